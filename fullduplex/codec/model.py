"""The Mimi-style streaming codec: wav at 24 kHz <-> codes [B, K, frames] at 12.5 Hz.

    encode: wav [B, 1, T] -> SEANet encoder -> transformer -> downsample (x2) -> split RVQ -> codes
    decode: codes -> RVQ decode -> upsample (x2) -> transformer -> SEANet decoder -> wav [B, 1, frames * 1920]
            (or, with ``decoder: istft``, an inverse-STFT decoder: codec/istft.py)

Batch calls zero-pad the input to whole frames. Inside ``with codec.streaming(B):`` each call
takes a whole number of frames and continues where the previous call stopped; batch and
streaming give the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn import ProjectedTransformer, StreamingContainer, StreamingConv1d, StreamingConvTranspose1d
from .config import CodecConfig
from .istft import ISTFTDecoder
from .quantizer import SplitResidualVectorQuantizer
from .seanet import SEANetDecoder, SEANetEncoder


@dataclass
class CodecOutput:
    """Training forward result: reconstruction [B, 1, T] (same length as the input), codes
    [B, K, frames], the RVQ commitment loss, the semantic quantizer output [B, D, frames] (for
    distillation) and quantizer statistics."""

    wav: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    semantic: torch.Tensor
    metrics: dict


class ConvDownsample1d(nn.Module):
    """Learnt causal downsampling by ``stride`` (kernel 2 * stride, replicate padding)."""

    def __init__(self, stride: int, dimension: int):
        super().__init__()
        self.conv = StreamingConv1d(dimension, dimension, 2 * stride, stride=stride, bias=False, pad_mode="replicate")

    def forward(self, x):
        return self.conv(x)


class ConvTrUpsample1d(nn.Module):
    """Learnt causal upsampling by ``stride``; depthwise when ``channel_wise`` (the released Mimi)."""

    def __init__(self, stride: int, dimension: int, channel_wise: bool):
        super().__init__()
        self.convtr = StreamingConvTranspose1d(dimension, dimension, 2 * stride, stride=stride,
                                               groups=dimension if channel_wise else 1, bias=False)

    def forward(self, x):
        return self.convtr(x)


class Codec(StreamingContainer):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = SEANetEncoder(cfg)
        self.decoder = ISTFTDecoder(cfg) if cfg.decoder == "istft" else SEANetDecoder(cfg)
        tr = dict(d_model=cfg.transformer_d_model, num_heads=cfg.transformer_num_heads,
                  num_layers=cfg.transformer_num_layers, dim_feedforward=cfg.transformer_dim_feedforward,
                  causal=True, context=cfg.transformer_context, positional_embedding="rope",
                  max_period=cfg.transformer_max_period, layer_scale=cfg.transformer_layer_scale,
                  norm=cfg.transformer_norm, gating="none", conv_layout=True)
        self.encoder_transformer = self.decoder_transformer = None
        if cfg.transformer_num_layers > 0:
            self.encoder_transformer = ProjectedTransformer(cfg.dimension, [cfg.dimension], **tr)
            self.decoder_transformer = ProjectedTransformer(cfg.dimension, [cfg.dimension], **tr)
        self.quantizer = SplitResidualVectorQuantizer(cfg.dimension, cfg.codebook_dim, cfg.n_q, cfg.bins,
                                                      cfg.n_q_semantic)
        self.downsample = self.upsample = None
        if cfg.resample_stride > 1:
            self.downsample = ConvDownsample1d(cfg.resample_stride, cfg.dimension)
            self.upsample = ConvTrUpsample1d(cfg.resample_stride, cfg.dimension, cfg.upsample_channel_wise)
        self.quantizer.set_num_codebooks(cfg.num_codebooks)

    # --- properties ------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    @property
    def frame_size(self) -> int:
        return self.cfg.frame_size

    @property
    def cardinality(self) -> int:
        return self.cfg.bins

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.n_q

    @property
    def total_codebooks(self) -> int:
        return self.quantizer.total_codebooks

    def set_num_codebooks(self, n: int) -> None:
        self.quantizer.set_num_codebooks(n)

    def skip_history(self, frames: int) -> None:
        """In streaming, move every session ``frames`` frames on as far as the transformers' attention
        is concerned (its cache then spans what it would that far into a conversation; for benchmarks)."""
        steps = frames * self.cfg.resample_stride  # the transformers run at the encoder's rate
        for tr in (self.encoder_transformer, self.decoder_transformer):
            if tr is not None:
                for layer in tr.transformer.layers:
                    state = layer.self_attn._streaming_state
                    if state is None:
                        raise RuntimeError("skip_history() works in streaming; enter streaming first")
                    state.skip(steps)
                    layer._streaming_state.step += steps

    # --- encode / decode -------------------------------------------------------------------
    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, T] -> unquantized latent [B, dimension, frames]."""
        if wav.dim() != 3 or wav.shape[1] != self.cfg.channels:
            raise ValueError(f"expected audio [B, {self.cfg.channels}, T], got {tuple(wav.shape)}")
        T, F_ = wav.shape[-1], self.frame_size
        if self.is_streaming:
            if T == 0 or T % F_:
                raise ValueError(f"in streaming, give a positive multiple of the frame size {F_} samples, got {T}")
        elif T % F_:
            wav = nn.functional.pad(wav, (0, F_ - T % F_))
        z = self.encoder(wav)
        if self.encoder_transformer is not None:
            (z,) = self.encoder_transformer(z)
        if self.downsample is not None:
            z = self.downsample(z)
        return z

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, T] float -> codes [B, K, ceil(T / frame_size)] int64."""
        return self.quantizer.encode(self.encode_latent(wav))

    def check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, K, T], got shape {tuple(codes.shape)}")
        K = codes.shape[1]
        if not 1 <= K <= self.total_codebooks:
            raise ValueError(f"codes have {K} codebooks; this codec has {self.total_codebooks} "
                             f"(uses {self.num_codebooks} by default)")
        if codes.dtype.is_floating_point:
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.cardinality):
            raise ValueError(f"codes out of range: found values in [{int(codes.min())}, {int(codes.max())}], "
                             f"valid codes are 0..{self.cardinality - 1}")

    def decode_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> quantized latent [B, dimension, T]."""
        self.check_codes(codes)
        return self.quantizer.decode(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> wav [B, 1, T * frame_size]."""
        z = self.decode_latent(codes)
        if self.upsample is not None:
            z = self.upsample(z)
        if self.decoder_transformer is not None:
            (z,) = self.decoder_transformer(z)
        return self.decoder(z)

    def decode_quantized(self, z: torch.Tensor) -> torch.Tensor:
        """Quantized latent [B, dimension, frames] -> wav [B, 1, frames * frame_size]."""
        if self.upsample is not None:
            z = self.upsample(z)
        if self.decoder_transformer is not None:
            (z,) = self.decoder_transformer(z)
        return self.decoder(z)

    def forward(self, wav: torch.Tensor, n_q: int | None = None, no_quantization: torch.Tensor | None = None,
                update_codebooks: bool = True, replace_dead_codes: bool = False) -> CodecOutput:
        """Training forward: wav [B, 1, T] -> :class:`CodecOutput` (outside streaming).

        ``n_q`` codebooks are used (quantizer dropout picks it; default: the codec's number);
        samples where ``no_quantization`` [B] is True pass the continuous latent to the decoder
        (Mimi's trick of quantizing only part of the time). The codebooks follow the data by EMA
        when ``update_codebooks`` (only in train mode)."""
        if self.is_streaming:
            raise RuntimeError("the training forward runs outside streaming")
        T = wav.shape[-1]
        z = self.encode_latent(wav)
        q = self.quantizer.forward_train(z, n_q, update=update_codebooks and self.training,
                                         replace_dead=replace_dead_codes)
        zq = q.x
        if no_quantization is not None:
            zq = torch.where(no_quantization.view(-1, 1, 1), z, zq)
        out = self.decode_quantized(zq)[..., :T]
        return CodecOutput(out, q.codes, q.commitment, q.semantic, q.metrics)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
