"""Multi-scale STFT discriminator (as in EnCodec / Mimi) and its adversarial and feature losses.

Each scale looks at the complex STFT (real and imaginary parts as two input channels) of the
waveform through a stack of 2-D convolutions dilated along time; it returns its logits and its
intermediate feature maps. Losses are the hinge losses and an L1 feature matching normalised by
the mean magnitude of the real features.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm


class STFTDiscriminator(nn.Module):
    def __init__(self, n_fft: int, filters: int = 32, max_filters: int = 256, dilations=(1, 2, 4)):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(2, filters, (3, 9), padding=(1, 4)))]
        ch = filters
        for d in dilations:
            out = min(2 * ch, max_filters)
            convs.append(weight_norm(nn.Conv2d(ch, out, (3, 9), stride=(1, 2), dilation=(d, 1),
                                               padding=(d, 4))))
            ch = out
        convs.append(weight_norm(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.out = weight_norm(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = wav.reshape(-1, wav.shape[-1]).float()
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        h = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, freq]
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            feats.append(h)
        return self.out(h), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """One :class:`STFTDiscriminator` per FFT size."""

    def __init__(self, n_ffts=(2048, 1024, 512, 256, 128), filters: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList([STFTDiscriminator(n, filters, max_filters=8 * filters)
                                             for n in n_ffts])

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(wav) for d in self.discriminators]


def discriminator_loss(real_out, fake_out) -> torch.Tensor:
    """Hinge loss: mean over scales of relu(1 - D(real)) + relu(1 + D(fake))."""
    loss = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for (r, _), (f, _) in zip(real_out, fake_out))
    return loss / len(real_out)


def generator_losses(real_out, fake_out) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial hinge loss relu(1 - D(fake)), feature matching L1(f_fake, f_real) / mean|f_real|)."""
    adv = sum(F.relu(1 - f).mean() for f, _ in fake_out) / len(fake_out)
    fm, n = 0.0, 0
    for (_, feats_r), (_, feats_f) in zip(real_out, fake_out):
        for fr, ff in zip(feats_r, feats_f):
            fr = fr.detach()
            fm = fm + F.l1_loss(ff, fr) / fr.abs().mean().clamp(min=1e-8)
            n += 1
    return adv, fm / max(n, 1)
