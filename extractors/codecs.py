"""``hf:DIR`` for neural audio codecs (EnCodec, DAC, Mimi): encoder blocks through hooks.

The codec runs its own ``encode`` on the waveform (``(batch, 1, n_samples)``); forward
hooks capture the output of every block of its encoder, and the pre-quantisation latent.
The codebook indices that ``encode`` returns are not features. Layers:

* ``encoder.<child>`` for every child of the encoder, a ``ModuleList`` child giving one
  layer per item (``encoder.layers.K`` for EnCodec; ``encoder.conv1``,
  ``encoder.block.K``, ``encoder.snake1``, ``encoder.conv2`` for DAC) and a child with a
  ``layers`` list one per layer (Mimi: ``encoder.encoder_seanet.layers.K``,
  ``encoder.encoder_transformer.layers.K``, then ``encoder.downsample``);
* ``quantizer.input``: the latent the quantiser encodes (the encoder's output; Mimi: after
  its transformer and the downsampling convolution).

Outputs are stored as ``(batch, n_frames, n_features)`` whatever their layout (convolution
outputs are channels-first, transformer outputs time-major): the layout is inferred as for
``torch:`` specs (:mod:`extractors.hooks`). Frame rates are measured from two dry runs.

EnCodec checkpoints that encode in overlapping chunks (the 48 kHz model) are refused:
the hooks would see only the last chunk.
"""

from __future__ import annotations

from alignjax.errors import InvalidOptionError

from .hooks import TorchExtractor

__all__ = ["CodecExtractor", "CODEC_TYPES"]

CODEC_TYPES = ("encodec", "dac", "mimi")
LATENT = "quantizer.input"


def _block_modules(encoder) -> dict:
    """``encoder.<name>`` -> module, one level into lists and ``layers`` lists."""
    import torch

    out = {}
    for name, child in encoder.named_children():
        if isinstance(child, torch.nn.ModuleList):
            out.update({f"encoder.{name}.{k}": m for k, m in enumerate(child)})
        elif isinstance(getattr(child, "layers", None), torch.nn.ModuleList):
            out.update({f"encoder.{name}.layers.{k}": m for k, m in enumerate(child.layers)})
        else:
            out[f"encoder.{name}"] = child
    return out


def _wrapper(model, model_type: str):
    """A module taking (batch, n_samples) waveforms that runs the codec's ``encode``."""
    import torch

    class _Encode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.codec = model

        def forward(self, x):
            return self.codec.encode(x[:, None, :], return_dict=True)

    return _Encode()


class CodecExtractor(TorchExtractor):
    """Adapter for EnCodec, DAC and Mimi (see the module docstring)."""

    def __init__(self, name: str, config, *, device: str = "cpu"):
        import torch
        import transformers as T

        if config.model_type not in CODEC_TYPES:
            raise InvalidOptionError(f"hf:{name}: {config.model_type!r} is not a codec "
                                     f"({', '.join(CODEC_TYPES)})")
        if config.model_type == "encodec" and getattr(config, "chunk_length_s", None):
            raise InvalidOptionError(
                f"hf:{name}: this EnCodec encodes in overlapping {config.chunk_length_s} s "
                "chunks, which forward hooks cannot capture whole; use the 24 kHz model")
        model = T.AutoModel.from_pretrained(name, dtype=torch.float32).eval().to(device)
        fe = T.AutoFeatureExtractor.from_pretrained(name)
        self.spec, self.name, self.device = f"hf:{name}", name, device
        self.model_type = config.model_type
        self.codec = model
        self.model = _wrapper(model, config.model_type).eval()
        self.sample_rate = int(getattr(fe, "sampling_rate", config.sampling_rate))
        hop = getattr(config, "hop_length", None) or round(self.sample_rate / config.frame_rate)
        self.min_samples = int(hop)
        self.max_samples = None
        self._modules = _block_modules(model.encoder)
        latent = model.encoder.downsample if config.model_type == "mimi" else model.encoder
        self._modules[LATENT] = latent
        self._layouts: dict[str, str] = {}
        self._torch = torch

    def describe(self) -> dict:
        import transformers

        d = super().describe()
        cfg = self.codec.config
        d.update(model_type=self.model_type, transformers=transformers.__version__,
                 name_or_path=str(getattr(cfg, "_name_or_path", self.name)),
                 latent=LATENT + " = the input of the quantiser; codebook indices are not "
                 "features")
        return d
