"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations


__all__ = ["add_brain_arguments", "brain_options", "read_labels", "parse_floats"]


def add_brain_arguments(p, *, required: bool = True, rois: bool = False,
                        mask_help: str | None = None, brain_group=None) -> None:
    """Register ``--brain``, ``--mask``, ``--stimulus-ids``, ``--drop-nan-voxels`` (and,
    with ``rois``, ``--rois``/``--roi-labels``) on a subcommand; read them back with
    :func:`brain_options`. ``brain_group``: a (mutually exclusive) group of ``p`` to hold
    ``--brain`` itself."""
    (brain_group or p).add_argument("--brain", required=required, metavar="PATH",
                   help="responses with stimulus ids: .npz, .h5, .npy + .ids.txt, .csv; a 4-D "
                        "NIfTI, a folder of 3-D beta images named <stimulus id>.nii.gz, a "
                        ".func.gii surface (both hemispheres when named hemi-L/hemi-R), a "
                        "pattern ('sub-*/betas.nii.gz', one subject per file) or a "
                        ".subjects.tsv table (subject, path, mask)")
    p.add_argument("--mask", default=None, metavar="NIFTI",
                   help=mask_help or "NIfTI/GIfTI mask on the data's grid: its voxels become "
                                     "the targets (default: voxels finite and not all zero)")
    p.add_argument("--stimulus-ids", default=None, metavar="FILE",
                   help="stimulus id of each volume: a text file (one per line) or a BIDS-style "
                        "events/labels table (default: <brain>.ids.txt or <brain>_events.tsv)")
    p.add_argument("--drop-nan-voxels", action="store_true",
                   help="leave out voxels of the mask holding NaN/inf (default: refuse, with counts)")
    if rois:
        p.add_argument("--rois", default=None, metavar="ATLAS",
                       help="atlas label image on the data's grid: median R² and best-layer "
                            "distribution per region and subject (roi_summary.csv, .png)")
        p.add_argument("--roi-labels", default=None, metavar="TSV",
                       help="names of the atlas labels (index<TAB>name, BIDS dseg.tsv style)")


def brain_options(args) -> dict:
    """The loader options of :func:`add_brain_arguments`' flags, for ``load_responses``."""
    opts = {"mask": args.mask, "stimulus_ids": args.stimulus_ids,
            "nan_voxels": "exclude" if args.drop_nan_voxels else None}
    return {k: v for k, v in opts.items() if v is not None}


def read_labels(spec: str, stimulus_ids):
    """Read ``labels.csv:column`` and return the labels in the order of ``stimulus_ids``."""
    import csv
    from pathlib import Path

    from alignjax.errors import InvalidOptionError, StoreError, match_ids

    path, sep, column = spec.rpartition(":")
    if not sep or not path:
        raise InvalidOptionError(f"--stratify {spec!r}: expected labels.csv:column")
    if not Path(path).is_file():
        raise StoreError(f"--stratify: {path} does not exist")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or column not in rows[0]:
        raise InvalidOptionError(f"--stratify: {path} has no column {column!r}"
                                 + (f" (columns: {list(rows[0])})" if rows else ""))
    id_col = "stimulus_id" if "stimulus_id" in rows[0] else "id" if "id" in rows[0] else None
    if id_col is None or stimulus_ids is None:
        if len(rows) != (len(stimulus_ids) if stimulus_ids is not None else len(rows)):
            raise InvalidOptionError("--stratify: row count differs from the stimuli")
        return [r[column] for r in rows]
    order = match_ids(stimulus_ids, [r[id_col] for r in rows], what="the features",
                      other_what=path)
    return [rows[i][column] for i in order]


def parse_names(text):
    """A comma-separated option as a list of stripped, non-empty names (None when unset)."""
    if not text:
        return None
    return [v.strip() for v in text.split(",") if v.strip()] or None


def parse_floats(text):
    """A comma-separated option as a list of floats (None when unset)."""
    names = parse_names(text)
    return None if names is None else [float(v) for v in names]
