"""The codec's architecture as one flat dataclass, with presets and Kyutai's nested config format."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CodecConfig:
    """Mimi-style codec: SEANet + transformers + split RVQ at ``frame_rate`` Hz.

    Frame size = sample_rate / frame_rate samples (1,920 = 80 ms for Mimi); the SEANet hop is
    prod(ratios) samples and the encoder transformer runs at sample_rate / hop Hz.
    """

    sample_rate: int = 24_000
    channels: int = 1
    frame_rate: float = 12.5
    # SEANet encoder/decoder
    dimension: int = 512
    n_filters: int = 64
    ratios: list[int] = field(default_factory=lambda: [8, 6, 5, 4])
    n_residual_layers: int = 1
    kernel_size: int = 7
    residual_kernel_size: int = 3
    last_kernel_size: int = 3
    compress: int = 2
    dilation_base: int = 2
    activation: str = "ELU"
    # encoder/decoder transformers (0 layers = none)
    transformer_d_model: int = 512
    transformer_num_heads: int = 8
    transformer_num_layers: int = 8
    transformer_dim_feedforward: int = 2048
    transformer_context: int = 250
    transformer_layer_scale: float | None = 0.01
    transformer_norm: str = "layer_norm"
    transformer_max_period: float = 10_000.0
    # split residual vector quantizer: n_q_semantic semantic + (n_q - n_q_semantic) acoustic codebooks
    codebook_dim: int = 256
    n_q: int = 32
    n_q_semantic: int = 1
    bins: int = 2048
    num_codebooks: int = 8  # codebooks used by default (<= n_q)
    upsample_channel_wise: bool = True  # depthwise upsampling conv, as in the released Mimi
    # the decoder after the decoder transformer: "seanet" (Mimi's) or "istft" (codec/istft.py: ConvNeXt
    # blocks at the STFT frame rate, sample_rate / istft_hop Hz, predicting spectra, window n_fft =
    # istft_hop x istft_overlap)
    decoder: str = "seanet"
    istft_dim: int = 384
    istft_blocks: int = 6
    istft_hop: int = 240
    istft_overlap: int = 4

    def __post_init__(self) -> None:
        self.ratios = list(self.ratios)
        if not 1 <= self.num_codebooks <= self.n_q:
            raise ValueError(f"num_codebooks must be in [1, {self.n_q}], got {self.num_codebooks}")
        if self.sample_rate % self.frame_rate or (self.sample_rate // self.frame_rate) % self.hop_length:
            raise ValueError(f"a frame ({self.sample_rate} / {self.frame_rate} Hz) must be a whole number of "
                             f"SEANet hops ({self.hop_length} samples)")
        if self.decoder not in ("seanet", "istft"):
            raise ValueError(f"decoder must be 'seanet' or 'istft', got {self.decoder!r}")
        if self.decoder == "istft" and (self.hop_length % self.istft_hop or self.istft_overlap < 2):
            raise ValueError(f"istft_hop ({self.istft_hop}) must divide the SEANet hop ({self.hop_length} samples) "
                             f"and istft_overlap ({self.istft_overlap}) must be at least 2")
        stride = self.encoder_frame_rate / self.frame_rate
        if stride != int(stride) or stride < 1:
            raise ValueError(f"encoder rate {self.encoder_frame_rate} Hz / frame rate {self.frame_rate} Hz "
                             "must be a whole number")

    @property
    def hop_length(self) -> int:
        h = 1
        for r in self.ratios:
            h *= r
        return h

    @property
    def encoder_frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def frame_size(self) -> int:
        return int(self.sample_rate / self.frame_rate)

    @property
    def resample_stride(self) -> int:
        return int(self.encoder_frame_rate / self.frame_rate)

    # --- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CodecConfig":
        if "seanet" in d or "quantizer" in d:
            return cls.from_kyutai(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown codec config keys {unknown}; known keys: {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_kyutai(cls, d: dict[str, Any], num_codebooks: int = 8) -> "CodecConfig":
        """From Kyutai's nested Mimi config ({sample_rate, frame_rate, seanet, quantizer, transformer})."""
        s, q, t = d.get("seanet", {}), d.get("quantizer", {}), d.get("transformer", {})
        return cls(
            sample_rate=d.get("sample_rate", 24_000), channels=d.get("channels", 1),
            frame_rate=d.get("frame_rate", 12.5),
            dimension=s.get("dimension", 512), n_filters=s.get("n_filters", 64), ratios=s.get("ratios", [8, 6, 5, 4]),
            n_residual_layers=s.get("n_residual_layers", 1), kernel_size=s.get("kernel_size", 7),
            residual_kernel_size=s.get("residual_kernel_size", 3), last_kernel_size=s.get("last_kernel_size", 3),
            compress=s.get("compress", 2), dilation_base=s.get("dilation_base", 2),
            activation=s.get("activation", "ELU"),
            transformer_d_model=t.get("d_model", 512), transformer_num_heads=t.get("num_heads", 8),
            transformer_num_layers=t.get("num_layers", 8), transformer_dim_feedforward=t.get("dim_feedforward", 2048),
            transformer_context=t.get("context", 250), transformer_layer_scale=t.get("layer_scale", 0.01),
            transformer_norm=t.get("norm", "layer_norm"), transformer_max_period=t.get("max_period", 10_000),
            codebook_dim=q.get("dimension", 256), n_q=q.get("n_q", 32), n_q_semantic=q.get("n_q_semantic", 1),
            bins=q.get("bins", 2048), num_codebooks=min(num_codebooks, q.get("n_q", 32)),
        )

    def to_kyutai(self) -> dict[str, Any]:
        """Kyutai's nested Mimi config for the same architecture (for the reference implementation)."""
        if self.decoder != "seanet":
            raise ValueError(f"Kyutai's Mimi has a SEANet decoder; this codec's is {self.decoder!r}")
        seanet = dict(channels=self.channels, dimension=self.dimension, causal=True, n_filters=self.n_filters,
                      n_residual_layers=self.n_residual_layers, activation=self.activation, compress=self.compress,
                      dilation_base=self.dilation_base, disable_norm_outer_blocks=0, kernel_size=self.kernel_size,
                      residual_kernel_size=self.residual_kernel_size, last_kernel_size=self.last_kernel_size,
                      norm="none", pad_mode="constant", ratios=list(self.ratios), true_skip=True)
        quantizer = dict(dimension=self.codebook_dim, n_q=self.n_q, bins=self.bins,
                         input_dimension=self.dimension, output_dimension=self.dimension)
        transformer = dict(d_model=self.transformer_d_model, num_heads=self.transformer_num_heads,
                           num_layers=self.transformer_num_layers, causal=True,
                           layer_scale=self.transformer_layer_scale, context=self.transformer_context,
                           conv_layout=True, max_period=self.transformer_max_period, gating="none",
                           norm=self.transformer_norm, positional_embedding="rope",
                           dim_feedforward=self.transformer_dim_feedforward, input_dimension=self.dimension,
                           output_dimensions=[self.dimension])
        return dict(sample_rate=self.sample_rate, channels=self.channels, frame_rate=self.frame_rate,
                    seanet=seanet, quantizer=quantizer, transformer=transformer)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "CodecConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def mimi_config() -> CodecConfig:
    """The released Mimi architecture (79 M parameters; 8 of 32 codebooks used -> 1.1 kbps)."""
    return CodecConfig()


def tiny_config() -> CodecConfig:
    """A 147 k-parameter Mimi for tests: same frame (1,920 samples), tiny widths."""
    return CodecConfig(dimension=32, n_filters=4, transformer_d_model=32, transformer_num_heads=4,
                       transformer_num_layers=2, transformer_dim_feedforward=64, codebook_dim=16, n_q=8, bins=64)


def small_config() -> CodecConfig:
    """The default codec's size: Mimi's layout at a width that trains and runs on a laptop CPU.

    ~9 M parameters; 8 codebooks of 1,024 entries at 12.5 Hz -> 1.0 kbps.
    """
    return CodecConfig(dimension=256, n_filters=32, transformer_d_model=256, transformer_num_heads=4,
                       transformer_num_layers=4, transformer_dim_feedforward=1024, codebook_dim=128, n_q=8,
                       bins=1024)


PRESETS = {"mimi": mimi_config, "small": small_config, "tiny": tiny_config}
