"""Causal convolutions that run over a whole signal or chunk by chunk with the same result.

State-dict keys follow Kyutai's layout (``conv.conv.weight``, ``convtr.convtr.weight``) so that
released Mimi weights load as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from . import fast
from .streaming import State, StreamingModule


class _Conv1dHolder(nn.Module):
    """Holds an ``nn.Conv1d`` under the name ``conv`` (the key layout of Kyutai's checkpoints)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.conv = nn.Conv1d(*args, **kwargs)


class _ConvTr1dHolder(nn.Module):
    """Holds an ``nn.ConvTranspose1d`` under the name ``convtr``."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.convtr = nn.ConvTranspose1d(*args, **kwargs)


@dataclass
class _ConvState(State):
    previous: torch.Tensor  # [B, C_in, k_eff - stride]: the input the next call needs from the past
    first: torch.Tensor  # bool [B]: nothing seen yet (for replicate padding)

    def reset(self, mask: torch.Tensor) -> None:
        self.previous.masked_fill_(mask.view(-1, 1, 1), 0.0)
        self.first |= mask


class StreamingConv1d(StreamingModule[_ConvState]):
    """Causal Conv1d: left-padded by ``k_eff - stride`` so output t only sees input up to t.

    Input [B, C_in, T] with T a multiple of the stride -> output [B, C_out, T / stride].
    ``pad_mode`` 'constant' pads with zeros, 'replicate' repeats the first sample.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True, pad_mode: str = "constant"):
        super().__init__()
        if pad_mode not in ("constant", "replicate"):
            raise ValueError(f"pad_mode must be 'constant' or 'replicate', got {pad_mode!r}")
        self.pad_mode = pad_mode
        self.conv = _Conv1dHolder(in_channels, out_channels, kernel_size, stride,
                                  dilation=dilation, groups=groups, bias=bias)
        self.stride = stride
        self.padding_total = (kernel_size - 1) * dilation + 1 - stride

    def _init_streaming_state(self, batch_size: int) -> _ConvState:
        w = self.conv.conv.weight
        previous = torch.zeros(batch_size, self.conv.conv.in_channels, self.padding_total,
                               dtype=w.dtype, device=w.device)
        first = torch.ones(batch_size, dtype=torch.bool, device=w.device)
        return _ConvState(batch_size, previous, first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T = x.shape
        if T == 0 or T % self.stride:
            raise ValueError(f"input length {T} must be a positive multiple of the stride {self.stride}")
        P = self.padding_total
        state = self._streaming_state
        if P > 0:
            if state is None:
                if self.pad_mode == "replicate":
                    x = torch.cat([x[..., :1].expand(B, C, P), x], dim=-1)
                else:
                    x = F.pad(x, (P, 0))
            else:
                previous = state.previous
                if self.pad_mode == "replicate" and bool(state.first.any()):
                    previous = torch.where(state.first.view(-1, 1, 1), x[..., :1].expand(B, C, P), previous)
                    state.first.zero_()
                x = torch.cat([previous, x], dim=-1)
                state.previous = x[..., -P:].contiguous()
        return fast.conv1d(self.conv.conv, x)


@dataclass
class _ConvTrState(State):
    partial: torch.Tensor  # [B, C_out, K - S]: overlap-add tail waiting for the next input (no bias)

    def reset(self, mask: torch.Tensor) -> None:
        self.partial.masked_fill_(mask.view(-1, 1, 1), 0.0)


class StreamingConvTranspose1d(StreamingModule[_ConvTrState]):
    """Causal ConvTranspose1d: input [B, C_in, T] -> output [B, C_out, T * stride].

    The last ``K - S`` outputs of each call overlap with the next call's; in streaming they are
    kept as ``partial`` and added to the next output, so chunked and whole results are equal.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True):
        super().__init__()
        self.convtr = _ConvTr1dHolder(in_channels, out_channels, kernel_size, stride, groups=groups, bias=bias)
        self.stride = stride
        self.overlap = kernel_size - stride

    def _init_streaming_state(self, batch_size: int) -> _ConvTrState:
        w = self.convtr.convtr.weight
        partial = torch.zeros(batch_size, self.convtr.convtr.out_channels, self.overlap,
                              dtype=w.dtype, device=w.device)
        return _ConvTrState(batch_size, partial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = fast.conv_transpose1d(self.convtr.convtr, x)
        P = self.overlap
        if P == 0:
            return y
        state = self._streaming_state
        if state is None:
            return y[..., :-P]
        y[..., :P] += state.partial
        tail = y[..., -P:]
        bias = self.convtr.convtr.bias
        state.partial = (tail - bias[:, None]) if bias is not None else tail.clone()
        return y[..., :-P]
