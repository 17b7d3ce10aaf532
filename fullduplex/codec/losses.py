"""Reconstruction losses of the codec: multi-scale mel distance and waveform L1.

The mel distance follows DAC's evaluation recipe: for each window length w (hop w / 4, Hann), an
L1 distance between log10(max(mel, 1e-5)) of the reference and the reconstruction, summed over
scales (plus, with ``linear_weight``, an L1 on the mel magnitudes themselves).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def hz_to_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0) if isinstance(f, float) else 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filters [n_mels, n_fft // 2 + 1], Slaney-normalised (equal area)."""
    f_max = f_max or sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mel_pts = torch.linspace(hz_to_mel(float(f_min)), hz_to_mel(float(f_max)), n_mels + 2, dtype=torch.float64)
    hz_pts = 700.0 * (10 ** (mel_pts / 2595.0) - 1.0)
    lower, center, upper = hz_pts[:-2, None], hz_pts[1:-1, None], hz_pts[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb * (2.0 / (upper - lower))
    return fb.float()


class MelSpectrogram(nn.Module):
    """wav [B, 1, T] -> mel magnitudes [B, n_mels, frames] (power 1)."""

    def __init__(self, n_fft: int, n_mels: int, sample_rate: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("fb", mel_filterbank(n_fft, n_mels, sample_rate), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.reshape(-1, wav.shape[-1]).float()
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True).abs()
        return torch.matmul(self.fb, spec)


class MultiScaleMelLoss(nn.Module):
    """Sum over scales of L1(log10 mel) (+ ``linear_weight`` x L1(mel)), mean over bins and frames."""

    def __init__(self, sample_rate: int, windows=(64, 128, 256, 512, 1024, 2048),
                 n_mels=(8, 16, 32, 64, 128, 128), linear_weight: float = 0.0):
        super().__init__()
        if len(windows) != len(n_mels):
            raise ValueError("windows and n_mels must have the same length")
        self.mels = nn.ModuleList([MelSpectrogram(w, m, sample_rate) for w, m in zip(windows, n_mels)])
        self.linear_weight = linear_weight

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        total = fake.new_zeros((), dtype=torch.float32)
        for mel in self.mels:
            mf, mr = mel(fake), mel(real)
            total = total + F.l1_loss(torch.log10(mf.clamp(min=1e-5)), torch.log10(mr.clamp(min=1e-5)))
            if self.linear_weight:
                total = total + self.linear_weight * F.l1_loss(mf, mr)
        return total
