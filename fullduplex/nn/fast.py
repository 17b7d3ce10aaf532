"""Fast CPU inference kernels for the small-batch matrix products of streaming.

Streaming multiplies every weight by only a few vectors per 80 ms frame, so the time is spent
reading weights from memory. PyTorch's default GEMM reaches a fraction of the memory bandwidth on
such shapes. Two kernels read them much faster:

- oneDNN's inner product over a weight reordered once into its blocked layout (one row, or four
  and more);
- for two or three rows of a weight with at most ``BLAS_MAX_IN`` inputs, BLAS's GEMM with the
  weight as the left operand (y^T = W x^T), over column blocks of at most ``BLAS_BLOCK`` inputs
  accumulated in place: measured on AVX2 x86 inside the codec's streaming step, about 1.5x oneDNN's
  speed on such shapes, and slower than oneDNN on wider ones.

Each layout is made on first use and kept for its module (rebuilt when the weight changes); the
plain ops run when gradients are needed or oneDNN is missing. Convolutions with short outputs
run as unfold + the same GEMM; transposed convolutions as GEMM + overlap-add. Results equal the
plain ops up to float rounding (~1e-6 relative).
"""

from __future__ import annotations

import weakref

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


def is_enabled() -> bool:
    return _ENABLED


def usable(w: torch.Tensor) -> bool:
    return (_ENABLED and _MKLDNN and w.device.type == "cpu" and w.dtype == torch.float32
            and not (torch.is_grad_enabled() and w.requires_grad))


class Weights:
    """One [out, in] weight in the layouts the kernels read, each made on first use."""

    __slots__ = ("w2d", "_packed", "_blocks")

    def __init__(self, w2d: torch.Tensor):
        self.w2d = w2d.detach().contiguous()
        self._packed: torch.Tensor | None | bool = None  # False: oneDNN refused this weight
        self._blocks: list[torch.Tensor] | None = None

    def packed(self) -> torch.Tensor | None:
        """oneDNN's reorder of the weight (None if oneDNN cannot take it)."""
        if self._packed is None:
            try:
                self._packed = torch.ops.mkldnn._reorder_linear_weight(self.w2d, 2)
            except Exception:
                self._packed = False
        return self._packed if self._packed is not False else None

    def blocks(self) -> list[torch.Tensor]:
        """The weight's contiguous column blocks of at most BLAS_BLOCK inputs."""
        if self._blocks is None:
            n = self.w2d.shape[1]
            self._blocks = [self.w2d] if n <= BLAS_BLOCK else [
                self.w2d[:, i:i + BLAS_BLOCK].contiguous() for i in range(0, n, BLAS_BLOCK)]
        return self._blocks


def pack(w2d: torch.Tensor) -> Weights | None:
    """``w2d`` [out, in] ready for :func:`gemm`; None when the fast kernels cannot take it."""
    return Weights(w2d) if usable(w2d) else None


# module -> {key: (weight stamp, Weights)}; outside the module, so that copying or pickling a module
# never meets oneDNN's opaque tensors (a copy builds its own on first use)
_CACHES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def cached_weights(owner: nn.Module, key: str, make_weight) -> Weights:
    """The module's weight as [out, in] (``make_weight``) for :func:`gemm`, cached for ``owner`` and
    rebuilt when the source changes."""
    src = owner.weight
    stamp = (src.data_ptr(), src._version)
    cache = _CACHES.get(owner)
    if cache is None:
        cache = _CACHES[owner] = {}
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    weights = Weights(make_weight(src.detach()))
    cache[key] = (stamp, weights)
    return weights


BLAS_MAX_ROWS = 3  # 2..3 rows of a weight with at most BLAS_MAX_IN inputs go to BLAS, the rest to oneDNN
BLAS_MAX_IN = 2048
BLAS_BLOCK = 1024  # inputs per BLAS call; wider weights are split and their products summed


def gemm(x: torch.Tensor, weights: Weights, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., in] @ W.T (+ bias) -> [..., out]."""
    shape = x.shape
    rows = x.numel() // shape[-1]
    blas = 2 <= rows <= BLAS_MAX_ROWS and shape[-1] <= BLAS_MAX_IN
    packed = None if blas else weights.packed()
    if packed is None:
        # x row-major and y returned row-major: BLAS is several times slower when x^T is the
        # contiguous one, and so are the element-wise ops that would follow a transposed y
        xt = x.reshape(rows, shape[-1]).contiguous().t()  # [in, rows]
        y, start = None, 0
        for block in weights.blocks():
            part = xt[start:start + block.shape[1]]
            y = torch.mm(block, part) if y is None else y.addmm_(block, part)
            start += block.shape[1]
        y = y.t().contiguous()
        if bias is not None:
            y = y + bias
    else:
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(1, -1, shape[-1]).contiguous(), packed, bias, "none",
                                               [], "")
    return y.reshape(*shape[:-1], y.shape[-1])


def linear(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, through the packed kernel when running inference on CPU."""
    if usable(module.weight):
        return gemm(x, cached_weights(module, "linear", lambda w: w), module.bias)
    return F.linear(x, module.weight, module.bias)


MIN_FAST_LINEAR = 65_536  # smaller weights: the call costs more than reading them, F.linear is faster


def linear_fn(m: nn.Linear):
    """m as a plain function for inference loops that run under ``torch.no_grad``: the fast kernel
    over its cached weight when that kernel takes it, else ``F.linear``. Read the module once per
    session (the function keeps the weight it was made with)."""
    w = m.weight
    if (_ENABLED and _MKLDNN and w.device.type == "cpu" and w.dtype == torch.float32
            and w.numel() >= MIN_FAST_LINEAR):
        weights, bias = cached_weights(m, "linear", lambda t: t), m.bias
        return lambda x: gemm(x, weights, bias)
    bias = m.bias
    return lambda x: F.linear(x, w, bias)


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
            and usable(conv.weight)):
        weights = cached_weights(conv, "conv", lambda w: w.reshape(w.shape[0], -1))
        cols = x.unfold(-1, k_eff, s)  # [B, C_in, T_out, k_eff]
        if d > 1:
            cols = cols[..., ::d]
        cols = cols.permute(0, 2, 1, 3).reshape(x.shape[0], t_out, -1)  # [B, T_out, C_in * k]
        return gemm(cols, weights, conv.bias).transpose(1, 2)
    return conv(x)


def conv_transpose1d(convtr: nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """``convtr(x)`` for x [B, C_in, T] -> [B, C_out, (T - 1) * stride + kernel] (no trimming)."""
    (k,), (s,) = convtr.kernel_size, convtr.stride
    B, c_in, T = x.shape
    if (convtr.groups == 1 and T <= MAX_GEMM_STEPS and convtr.weight.numel() >= MIN_GEMM_WEIGHTS
            and convtr.dilation[0] == 1 and convtr.padding[0] == 0 and convtr.output_padding[0] == 0
            and usable(convtr.weight)):
        # weight [C_in, C_out, K] -> [C_out * K, C_in]
        weights = cached_weights(convtr, "convtr", lambda w: w.reshape(w.shape[0], -1).t())
        cols = gemm(x.transpose(1, 2), weights, None)  # [B, T, C_out * K]
        c_out = cols.shape[-1] // k
        length = (T - 1) * s + k
        y = F.fold(cols.transpose(1, 2), output_size=(1, length), kernel_size=(1, k), stride=(1, s))
        y = y.view(B, c_out, length)
        if convtr.bias is not None:
            y = y + convtr.bias[:, None]
        return y
    return convtr(x)
