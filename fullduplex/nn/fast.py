"""Fast CPU inference kernels for the small-batch matrix products of streaming.

Streaming multiplies every weight by only a few vectors per 80 ms frame, so the time is spent
reading weights from memory. PyTorch's default GEMM reaches a fraction of the memory bandwidth on
such shapes; oneDNN's inner product with a weight reordered once into its blocked layout reads
them at close to full speed. These helpers keep that reordered copy next to the module (rebuilt
when the weight changes) and fall back to the plain ops when gradients are needed or oneDNN is
missing. Convolutions with short outputs run as unfold + the same GEMM; transposed convolutions
as GEMM + overlap-add. Results equal the plain ops up to float rounding (~1e-6 relative).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_ENABLED = True


def set_enabled(enabled: bool) -> None:
    """Turn the fast kernels on or off for the whole process (e.g. to compare against plain ops)."""
    global _ENABLED
    _ENABLED = enabled


def _available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except Exception:
        return False


_MKLDNN = _available()


def _usable(w: torch.Tensor) -> bool:
    return (_ENABLED and _MKLDNN and w.device.type == "cpu" and w.dtype == torch.float32
            and not (torch.is_grad_enabled() and w.requires_grad))


def _packed(owner: nn.Module, key: str, make_weight) -> torch.Tensor | None:
    """The oneDNN-reordered [out, in] weight cached on ``owner``; rebuilt when the source changes."""
    src = owner.weight
    stamp = (src.data_ptr(), src._version)
    cache = owner.__dict__.setdefault("_fast_cache", {})
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        w2d = make_weight(src.detach()).contiguous()
        packed = torch.ops.mkldnn._reorder_linear_weight(w2d, 2)
    except Exception:
        return None
    cache[key] = (stamp, packed)
    return packed


def _gemm(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., in] @ packed.T (+ bias) -> [..., out]."""
    shape = x.shape
    y = torch.ops.mkldnn._linear_pointwise(x.reshape(1, -1, shape[-1]).contiguous(), packed, bias, "none", [], "")
    return y.view(*shape[:-1], y.shape[-1])


def linear(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, through the packed kernel when running inference on CPU."""
    if _usable(module.weight):
        packed = _packed(module, "linear", lambda w: w)
        if packed is not None:
            return _gemm(x, packed, module.bias)
    return F.linear(x, module.weight, module.bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and keys) that uses the packed kernel for CPU inference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(self, x)


# Convolutions whose output has at most this many steps run as GEMM (streaming-sized chunks);
# longer ones (batch encoding of whole files) stay on the native convolution.
MAX_GEMM_STEPS = 64
MIN_GEMM_WEIGHTS = 16_384


def conv1d(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Unpadded ``conv(x)`` for x [B, C_in, L] -> [B, C_out, T_out]."""
    (k,), (s,), (d,) = conv.kernel_size, conv.stride, conv.dilation
    k_eff = (k - 1) * d + 1
    t_out = (x.shape[-1] - k_eff) // s + 1
    if (conv.groups == 1 and t_out <= MAX_GEMM_STEPS and conv.weight.numel() >= MIN_GEMM_WEIGHTS
            and _usable(conv.weight)):
        packed = _packed(conv, "conv", lambda w: w.reshape(w.shape[0], -1))
        if packed is not None:
            cols = x.unfold(-1, k_eff, s)  # [B, C_in, T_out, k_eff]
            if d > 1:
                cols = cols[..., ::d]
            cols = cols.permute(0, 2, 1, 3).reshape(x.shape[0], t_out, -1)  # [B, T_out, C_in * k]
            return _gemm(cols, packed, conv.bias).transpose(1, 2)
    return conv(x)


def conv_transpose1d(convtr: nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """``convtr(x)`` for x [B, C_in, T] -> [B, C_out, (T - 1) * stride + kernel] (no trimming)."""
    (k,), (s,) = convtr.kernel_size, convtr.stride
    B, c_in, T = x.shape
    if (convtr.groups == 1 and T <= MAX_GEMM_STEPS and convtr.weight.numel() >= MIN_GEMM_WEIGHTS
            and convtr.dilation[0] == 1 and convtr.padding[0] == 0 and convtr.output_padding[0] == 0
            and _usable(convtr.weight)):
        # weight [C_in, C_out, K] -> [C_out * K, C_in]
        packed = _packed(convtr, "convtr", lambda w: w.reshape(w.shape[0], -1).t())
        if packed is not None:
            cols = _gemm(x.transpose(1, 2), packed, None)  # [B, T, C_out * K]
            c_out = cols.shape[-1] // k
            length = (T - 1) * s + k
            y = F.fold(cols.transpose(1, 2), output_size=(1, length), kernel_size=(1, k), stride=(1, s))
            y = y.view(B, c_out, length)
            if convtr.bias is not None:
                y = y + convtr.bias[:, None]
            return y
    return convtr(x)
