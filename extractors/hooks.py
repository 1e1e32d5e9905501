"""``torch:<module.path>:<factory>``: any ``torch.nn.Module``, layers captured by forward hooks.

``factory()`` (imported from ``module.path``; the current directory is searched too)
returns a module that takes a waveform batch
``(batch, n_samples)`` float32 tensor. Its sample rate is the module's ``sample_rate``
attribute (16 kHz when absent); its minimum input length the ``min_samples`` attribute
(1 when absent). Layers are the names of ``named_modules()``; a forward hook on each
requested module captures its output:

* tuple/list outputs: the first tensor (as transformers layers return ``(hidden, ...)``);
  dict-like outputs: ``last_hidden_state`` or the first tensor value;
* ``(batch,)`` -> one frame, one feature; ``(batch, n_features)`` -> one frame;
* ``(batch, a, b)`` is read as ``(batch, n_frames, n_features)``, except for channels-first
  modules (``Conv1d``, ``ConvTranspose1d``, ``BatchNorm1d``, ``InstanceNorm1d``,
  ``MaxPool1d``, ``AvgPool1d``, or any module with ``alignjax_channels_first = True``),
  read as ``(batch, n_features, n_frames)``;
* 4-D and higher: everything after the batch axis is flattened into one frame.

A module called several times in one forward pass keeps the output of its last call.

Requested names are checked before any audio is processed; an unknown name raises
:class:`~extractors.spec.LayerError` listing every available name.
"""

from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np

from alignjax._validation import InvalidOptionError

from .spec import Extractor

__all__ = ["TorchExtractor", "as_frames"]


def _channels_first(module) -> bool:
    from torch import nn

    if getattr(module, "alignjax_channels_first", False):
        return True
    return isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d,
                               nn.InstanceNorm1d, nn.MaxPool1d, nn.AvgPool1d))


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


def as_frames(t, *, channels_first: bool = False):
    """Reshape a module output to (batch, n_frames, n_features) (see the module docstring)."""
    if t.dim() == 1:
        return t[:, None, None]
    if t.dim() == 2:
        return t[:, None, :]
    if t.dim() == 3:
        return t.transpose(1, 2) if channels_first else t
    return t.reshape(t.shape[0], 1, -1)


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
        self._torch = torch

    def layer_names(self) -> list[str]:
        return list(self._modules)

    def describe(self) -> dict:
        import torch

        n_params = sum(p.numel() for p in self.model.parameters())
        return {"class": type(self.model).__qualname__, "torch": torch.__version__,
                "n_parameters": int(n_params)}

    def forward(self, waves: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        torch = self._torch
        captured: dict[str, object] = {}
        handles = []

        def make_hook(name, module):
            cf = _channels_first(module)

            def hook(_mod, _inp, out):
                t = _first_tensor(out)
                if t is None:
                    raise InvalidOptionError(f"layer {name!r} returned no tensor ({type(out).__name__})")
                captured[name] = as_frames(t.detach(), channels_first=cf).float().cpu().numpy()

            return hook

        for name in layers:
            module = self._modules[name]
            handles.append(module.register_forward_hook(make_hook(name, module)))
        try:
            with torch.no_grad():
                self.model(torch.from_numpy(np.asarray(waves, np.float32)).to(self.device))
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in layers if n not in captured]
        if missing:
            raise InvalidOptionError(f"layers {missing} were not called during the forward pass")
        return {n: captured[n] for n in layers}
