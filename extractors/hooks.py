"""``torch:<module.path>:<factory>``: any ``torch.nn.Module``, layers captured by forward hooks.

``factory()`` (imported from ``module.path``; the current directory is searched too)
returns a module that takes a waveform batch
``(batch, n_samples)`` float32 tensor. Its sample rate is the module's ``sample_rate``
attribute (16 kHz when absent); its minimum input length the ``min_samples`` attribute
(1 when absent). Layers are the names of ``named_modules()``; a forward hook on each
requested module captures its output (tuple/list outputs: the first tensor, as
transformers layers return ``(hidden, ...)``; dict-like outputs: ``last_hidden_state`` or
the first tensor value).

The layout of every hooked output is known, never guessed from the module's type. Unless
the module declares it, it is inferred from three probe passes over low-level noise
(batch 2 and batch 3 of one clip length, batch 2 of a longer clip): the axis that follows
the batch size is the batch axis, the axis that follows the clip length is time. So the
time-major outputs of ``nn.LSTM``, ``nn.GRU``, ``nn.MultiheadAttention`` or
``nn.TransformerEncoderLayer`` (``batch_first=False``: time, batch, features) and the
channels-first outputs of any module (a conv block, its ``GroupNorm``, its ``GELU``:
batch, channels, time) are all stored as ``(batch, n_frames, n_features)``:

* a time axis: moved after the batch axis; every other axis is flattened into features,
  in order (``(batch, channels, freq, time)`` -> ``(batch, time, channels * freq)``);
* no time axis: ``(batch,)`` -> one frame, one feature; ``(batch, n)`` -> one frame;
  ``(batch, n_tokens, n_features)`` -> tokens as frames (frame rate 0); other shapes ->
  everything after the batch axis flattened into one frame.

A module whose output has no identifiable batch axis, or several axes that follow the clip
length (e.g. time x time attention weights), fails with its name unless it declares its
layout: ``alignjax_layout``, a string with one letter per axis, ``B`` for batch, ``T`` for
time (at most one) and any other letter for a feature axis (``"TBF"`` for a time-major
output, ``"BHTF"`` ...). ``alignjax_channels_first = True`` is the same as ``"BFT"``.

A module called several times in one forward pass keeps the output of its last call.
Frame rates are measured from two dry runs unless the hooked module declares its own
``alignjax_frame_rate_hz``. The time of a layer's frame 0 (``frame_offset_s``, see
:mod:`extractors.timegrid`) is the module's ``alignjax_frame_offset_s`` if it declares one,
else measured from its receptive field: the centre of the input samples a middle frame
depends on, each weighted by the squared gradient of the frame with respect to it
(:meth:`TorchExtractor.frame_offset`; for a convolution stack, the centre of its kernels'
span through every padding and stride).

Requested names are checked before any audio is processed; an unknown name raises
:class:`~extractors.spec.LayerError` listing every available name.
"""

from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

from .spec import Extractor

__all__ = ["TorchExtractor", "LayoutError", "as_frames", "infer_layout"]


class LayoutError(InvalidOptionError):
    """The layout of a hooked module's output cannot be determined."""


def _declared_layout(module) -> str | None:
    layout = getattr(module, "alignjax_layout", None)
    if layout is None and getattr(module, "alignjax_channels_first", False):
        layout = "BFT"
    return layout


def _check_layout(name: str, layout, ndim: int) -> str:
    if (not isinstance(layout, str) or len(layout) != ndim or layout.count("B") != 1
            or layout.count("T") > 1):
        raise LayoutError(
            f"layer {name!r}: alignjax_layout {layout!r} does not describe its {ndim}-D output; "
            f"give one letter per axis, one 'B' (batch), at most one 'T' (time), e.g. "
            f"{'BTF'[:ndim]!r}"
        )
    return layout


def infer_layout(name: str, shapes: Sequence[tuple[int, ...]]) -> str:
    """Layout of an output from its shapes in three probe passes.

    Parameters
    ----------
    name : str
        Module name (for the error message).
    shapes : (shape_a, shape_b, shape_c)
        Shapes for batch 2 and batch 3 of one clip length, and batch 2 of a longer clip.

    Returns
    -------
    str
        One letter per axis: ``B`` batch, ``T`` time, ``F`` feature (see the module
        docstring).
    """
    a, b, c = (tuple(s) for s in shapes)
    hint = ("; declare it on the module, e.g. module.alignjax_layout = 'TBF' (one letter per "
            "axis: B batch, T time, others features)")
    if not len(a) == len(b) == len(c) or len(a) == 0:
        raise LayoutError(f"layer {name!r}: its output changes rank with the input "
                          f"({a}, {b}, {c}); it cannot be stored as frames")
    by_batch = [i for i in range(len(a)) if a[i] != b[i]]
    if len(by_batch) != 1 or (a[by_batch[0]], b[by_batch[0]]) != (2, 3):
        raise LayoutError(f"layer {name!r}: no single axis of its output follows the batch size "
                          f"(shapes {a} for 2 clips, {b} for 3){hint}")
    batch = by_batch[0]
    by_time = [i for i in range(len(a)) if a[i] != c[i]]
    if batch in by_time:
        raise LayoutError(f"layer {name!r}: its batch axis changes with the clip length "
                          f"({a} vs {c}){hint}")
    if len(by_time) > 1:
        raise LayoutError(f"layer {name!r}: several axes of its output follow the clip length "
                          f"({a} for a short clip, {c} for a longer one){hint}")
    layout = ["F"] * len(a)
    layout[batch] = "B"
    if by_time:
        layout[by_time[0]] = "T"
    elif len(a) == 3 and batch == 0:
        layout[1] = "T"  # (batch, n_tokens, n_features): tokens as frames
    return "".join(layout)


def _first_tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            t = _first_tensor(item)
            if t is not None:
                return t
        return None
    if hasattr(out, "keys"):
        if "last_hidden_state" in out.keys():
            return out["last_hidden_state"]
        for key in out.keys():
            t = _first_tensor(out[key])
            if t is not None:
                return t
    return None


def as_frames(t, layout: str):
    """Reshape a module output to (batch, n_frames, n_features) given its ``layout``."""
    order = [layout.index("B")] + ([layout.index("T")] if "T" in layout else [])
    order += [i for i, ax in enumerate(layout) if ax not in "BT"]
    t = t.permute(*order)
    n_frames = t.shape[1] if "T" in layout else 1
    return t.reshape(t.shape[0], n_frames, -1)


class TorchExtractor(Extractor):
    """Forward-hook adapter for any ``torch.nn.Module`` (see the module docstring)."""

    def __init__(self, target: str, *, device: str = "cpu"):
        import torch

        module_path, sep, factory_name = target.rpartition(":")
        if not sep or not module_path or not factory_name:
            raise InvalidOptionError(
                f"torch: spec must be 'torch:<module.path>:<factory>', got 'torch:{target}'"
            )
        import os
        import sys

        if os.getcwd() not in sys.path:  # the console script does not put '.' on the path
            sys.path.append(os.getcwd())
        try:
            mod = importlib.import_module(module_path)
        except ImportError as exc:
            raise InvalidOptionError(f"cannot import {module_path!r} for torch:{target} ({exc})") from None
        factory = getattr(mod, factory_name, None)
        if not callable(factory):
            raise InvalidOptionError(f"{module_path} has no callable {factory_name!r}")
        model = factory()
        if not isinstance(model, torch.nn.Module):
            raise InvalidOptionError(
                f"{module_path}:{factory_name}() returned {type(model).__name__}, not a torch.nn.Module"
            )
        self.spec = f"torch:{target}"
        self.model = model.eval().to(device)
        self.device = device
        self.sample_rate = int(getattr(model, "sample_rate", 16000))
        self.min_samples = int(getattr(model, "min_samples", 1))
        self.max_samples = getattr(model, "max_samples", None)
        self._modules = {name: m for name, m in model.named_modules() if name}
        self._layouts: dict[str, str] = {}
        self._torch = torch

    def layer_names(self) -> list[str]:
        return list(self._modules)

    def describe(self) -> dict:
        import torch

        n_params = sum(p.numel() for p in self.model.parameters())
        return {"class": type(self.model).__qualname__, "torch": torch.__version__,
                "n_parameters": int(n_params)}

    def frame_rate(self, layer: str) -> float | None:
        """The module's ``alignjax_frame_rate_hz`` if it declares one (else measured)."""
        rate = getattr(self._modules[layer], "alignjax_frame_rate_hz", None)
        return None if rate is None else float(rate)

    def frame_offset(self, layer: str, rate: float) -> float:
        """Seconds from the clip onset to the centre of frame 0 of ``layer``.

        The module's ``alignjax_frame_offset_s`` if it declares one. Otherwise measured on
        a probe of low-level noise (fixed seed) long enough for a frame in the middle
        (``j``) to see no edge: the gradient of ``u . frame_j`` (``u``: four fixed random
        unit-variance projections, so every feature counts) with respect to each input
        sample ``n``; the centre is the mean of ``n`` weighted by the squared gradients, in
        seconds, minus ``j / rate``. For convolutions this is the centre of the receptive
        field as their kernels weight it; recurrent and attention layers with residual
        paths are centred where their own frame's input is.
        """
        declared = getattr(self._modules[layer], "alignjax_frame_offset_s", None)
        if declared is not None:
            return float(declared)
        if not rate > 0:
            return 0.0
        if layer not in getattr(self, "_offsets", {}):
            self._offsets = getattr(self, "_offsets", {})
            self._offsets[layer] = self._measured_offset(layer, rate)
        return self._offsets[layer]

    def _measured_offset(self, layer: str, rate: float) -> float:
        """See :meth:`frame_offset` (gradient-weighted receptive-field centre)."""
        torch = self._torch
        layout = self.layouts([layer])[layer]
        n = max(2 * self.sample_rate, 4 * self.min_samples)
        if self.max_samples is not None:
            n = min(n, int(self.max_samples))
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
                             * 0.1).to(self.device).requires_grad_(True)
        got = {}

        def hook(_mod, _inp, out):
            got["t"] = _first_tensor(out)

        handle = self._modules[layer].register_forward_hook(hook)
        try:
            with torch.enable_grad():
                self.model(x)
                frames = as_frames(got["t"], _check_layout(layer, layout, got["t"].dim()))
                j = frames.shape[1] // 2
                u = torch.from_numpy(np.random.default_rng(1).standard_normal(
                    (4, frames.shape[-1])).astype(np.float32)).to(frames.device)
                energy = torch.zeros(n, dtype=torch.float64)
                for k in range(len(u)):
                    (g,) = torch.autograd.grad((frames[0, j] * u[k]).sum(), x,
                                               retain_graph=k < len(u) - 1)
                    energy += g[0].detach().double().cpu() ** 2
        finally:
            handle.remove()
        total = float(energy.sum())
        if not total > 0:
            return 0.0  # the frame does not depend on the audio: no centre to give
        centre = float((energy * torch.arange(n, dtype=torch.float64)).sum()) / total
        return centre / self.sample_rate - j / rate

    def _capture(self, waves: np.ndarray, layers: Sequence[str]) -> dict:
        """One forward pass; the raw output tensor of each layer (its last call)."""
        torch = self._torch
        captured: dict[str, object] = {}
        handles = []

        def make_hook(name):
            def hook(_mod, _inp, out):
                t = _first_tensor(out)
                if t is None:
                    raise InvalidOptionError(f"layer {name!r} returned no tensor ({type(out).__name__})")
                captured[name] = t.detach()

            return hook

        for name in layers:
            handles.append(self._modules[name].register_forward_hook(make_hook(name)))
        try:
            with torch.no_grad():
                self.model(torch.from_numpy(np.asarray(waves, np.float32)).to(self.device))
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in layers if n not in captured]
        if missing:
            raise InvalidOptionError(f"layers {missing} were not called during the forward pass")
        return captured

    def _probe_lengths(self) -> tuple[int, int]:
        n1 = max(self.min_samples, self.sample_rate // 4)
        n2 = 2 * n1
        if self.max_samples is not None and n2 > self.max_samples:
            n1, n2 = max(self.min_samples, self.max_samples // 2), int(self.max_samples)
        if n1 >= n2:
            raise LayoutError(f"{self.spec}: min_samples {self.min_samples} and max_samples "
                              f"{self.max_samples} leave no room for two probe lengths; declare "
                              "alignjax_layout on every hooked module")
        return n1, n2

    def layouts(self, layers: Sequence[str]) -> dict[str, str]:
        """Each layer's output layout (declared, else inferred; see the module docstring)."""
        todo = [n for n in layers if n not in self._layouts
                and _declared_layout(self._modules[n]) is None]
        if todo:
            n1, n2 = self._probe_lengths()
            noise = np.random.default_rng(0).standard_normal((3, n2)).astype(np.float32) * 0.01
            runs = [self._capture(noise[:2, :n1], todo), self._capture(noise[:3, :n1], todo),
                    self._capture(noise[:2, :n2], todo)]
            for name in todo:
                self._layouts[name] = infer_layout(name, [tuple(r[name].shape) for r in runs])
        return {n: self._layouts.get(n) or _declared_layout(self._modules[n]) for n in layers}

    def forward(self, waves: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        layouts = self.layouts(layers)
        captured = self._capture(waves, layers)
        out = {}
        for name in layers:
            t = captured[name]
            layout = _check_layout(name, layouts[name], t.dim())
            if t.shape[layout.index("B")] != len(waves):
                raise LayoutError(f"layer {name!r}: output {tuple(t.shape)} has no batch axis of "
                                  f"size {len(waves)} where its layout {layout!r} puts it")
            out[name] = as_frames(t, layout).float().cpu().numpy()
        return out
