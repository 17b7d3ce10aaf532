"""SEANet encoder and decoder (causal, streaming), with Kyutai's module indices.

Encoder: wav [B, 1, T] -> latent [B, dimension, T / hop].  Decoder: the reverse.
"""

from __future__ import annotations

from torch import nn

from ..nn import StreamingContainer, StreamingConv1d, StreamingConvTranspose1d
from .config import CodecConfig


def _activation(name: str) -> nn.Module:
    if name == "ELU":
        return nn.ELU(alpha=1.0)
    return getattr(nn, name)()


class ResidualBlock(StreamingContainer):
    """x + conv_k1(act(conv_k(act(x)))), the inner width being dim / compress."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, compress: int, activation: str):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            _activation(activation),
            StreamingConv1d(dim, hidden, kernel_size, dilation=dilation),
            _activation(activation),
            StreamingConv1d(hidden, dim, 1),
        )
        self.shortcut = nn.Identity()

    def forward(self, x):
        return self.shortcut(x) + self.block(x)


class SEANetEncoder(StreamingContainer):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        act = cfg.activation
        mult = 1
        layers: list[nn.Module] = [StreamingConv1d(cfg.channels, cfg.n_filters, cfg.kernel_size)]
        for ratio in reversed(cfg.ratios):
            width = mult * cfg.n_filters
            for j in range(cfg.n_residual_layers):
                layers.append(ResidualBlock(width, cfg.residual_kernel_size, cfg.dilation_base ** j, cfg.compress, act))
            layers += [_activation(act), StreamingConv1d(width, 2 * width, 2 * ratio, stride=ratio)]
            mult *= 2
        layers += [_activation(act), StreamingConv1d(mult * cfg.n_filters, cfg.dimension, cfg.last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        """x [B, channels, T] (T a multiple of the hop) -> [B, dimension, T / hop]."""
        return self.model(x)


class SEANetDecoder(StreamingContainer):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        act = cfg.activation
        mult = 2 ** len(cfg.ratios)
        layers: list[nn.Module] = [StreamingConv1d(cfg.dimension, mult * cfg.n_filters, cfg.kernel_size)]
        for ratio in cfg.ratios:
            width = mult * cfg.n_filters
            layers += [_activation(act), StreamingConvTranspose1d(width, width // 2, 2 * ratio, stride=ratio)]
            for j in range(cfg.n_residual_layers):
                layers.append(ResidualBlock(width // 2, cfg.residual_kernel_size, cfg.dilation_base ** j,
                                            cfg.compress, act))
            mult //= 2
        layers += [_activation(act), StreamingConv1d(cfg.n_filters, cfg.channels, cfg.last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, z):
        """z [B, dimension, T'] -> [B, channels, T' * hop]."""
        return self.model(z)
