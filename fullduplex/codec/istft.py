"""An inverse-STFT decoder (Vocos-style), causal and streaming: the codec's alternative to the SEANet decoder.

    z [B, dimension, T'] --conv--> [B, C, T'] --repeat x up, conv--> [B, C, J]   (J = T' * up STFT frames)
      --ConvNeXt blocks, LayerNorm, Linear--> log-magnitude and phase [B, n_fft / 2 + 1, J] each
      --irfft, Hann window, overlap-add--> wav [B, 1, J * hop]

Instead of upsampling to the sample rate through transposed convolutions, the network stays at the
STFT frame rate (100 Hz for a 240-sample hop at 24 kHz) and predicts each frame's spectrum; one
inverse FFT per frame makes the waveform. It learns from a mel loss in far fewer steps than the
SEANet decoder (docs/training.md, "Another decoder for the same tokens").

Causality: frame j's window covers output samples [j * hop, j * hop + n_fft), so output sample t is
final once frame t // hop is in. In streaming, the last n_fft - hop samples of a call's overlap-add
wait in the state for the next call's frames, as in a transposed convolution; chunked and whole
decoding give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..nn import State, StreamingContainer, StreamingConv1d, StreamingModule
from .config import CodecConfig


class ConvNeXtBlock(StreamingContainer):
    """x + scale * fc2(gelu(fc1(norm(dwconv(x))))) on [B, C, T]; the depthwise conv is causal."""

    def __init__(self, dim: int, kernel_size: int = 7, mult: int = 3):
        super().__init__()
        self.dwconv = StreamingConv1d(dim, dim, kernel_size, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mult * dim)
        self.fc2 = nn.Linear(mult * dim, dim)
        self.scale = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))) * self.scale
        return x + y.transpose(1, 2)


@dataclass
class _OverlapState(State):
    tail: torch.Tensor  # [B, n_fft - hop]: overlap-add waiting for the next call's frames

    def reset(self, mask: torch.Tensor) -> None:
        self.tail.masked_fill_(mask.view(-1, 1), 0.0)


class ISTFTDecoder(StreamingModule[_OverlapState]):
    """z [B, dimension, T'] -> wav [B, 1, T' * (hop_length of the SEANet ratios)]."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        C = cfg.istft_dim
        self.hop = cfg.istft_hop
        self.n_fft = cfg.istft_hop * cfg.istft_overlap
        self.up = cfg.hop_length // cfg.istft_hop
        self.inp = StreamingConv1d(cfg.dimension, C, 3)
        self.post_up = StreamingConv1d(C, C, 2 * self.up)  # mixes the repeated frames, causally
        self.blocks = nn.Sequential(*[ConvNeXtBlock(C) for _ in range(cfg.istft_blocks)])
        self.norm = nn.LayerNorm(C)
        self.out = nn.Linear(C, self.n_fft + 2)
        # a periodic Hann window at overlap R sums to R / 2: scale it to sum to 1
        self.register_buffer("window", torch.hann_window(self.n_fft) * (2 / cfg.istft_overlap), persistent=False)

    def _init_streaming_state(self, batch_size: int) -> _OverlapState:
        w = self.out.weight
        return _OverlapState(batch_size, torch.zeros(batch_size, self.n_fft - self.hop, dtype=w.dtype, device=w.device))

    def spectrum(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, dimension, T'] -> complex spectra [B, n_fft / 2 + 1, T' * up]."""
        x = self.inp(z).repeat_interleave(self.up, dim=-1)
        x = self.blocks(self.post_up(x))
        x = self.out(self.norm(x.transpose(1, 2))).transpose(1, 2).float()
        log_mag, phase = x.chunk(2, dim=1)
        return torch.polar(torch.exp(log_mag.clamp(max=6.0)), phase)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        spec = self.spectrum(z)
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]  # [B, n_fft, J]
        J = frames.shape[-1]
        total = (J - 1) * self.hop + self.n_fft
        y = F.fold(frames, (1, total), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]  # [B, total]
        state = self._streaming_state
        if state is not None:
            y[:, : state.tail.shape[1]] += state.tail
            state.tail = y[:, J * self.hop:].clone()
        return y[:, None, : J * self.hop].to(z.dtype)
