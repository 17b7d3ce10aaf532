"""A streaming transformer shared by the codec and the LM.

Pre-norm residual layers with RoPE, a KV cache over a bounded context, optional layer scale,
gated feed-forward (SiLU/GELU GLU) or a plain MLP, LayerNorm or RMSNorm, grouped KV heads and
per-step weights (the depth transformer uses one set of projections per codebook step).

Shapes: activations are [B, T, C] ("time before channels"); ``ProjectedTransformer`` also accepts
the conv layout [B, C, T]. Parameter names follow Kyutai's checkpoints so their weights load as is;
the older fused attention names (``in_proj_weight``, ``out_proj.weight``) are accepted on load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from . import fast
from .fast import Linear
from .streaming import State, StreamingContainer, StreamingModule


# ------------------------------------------------------------------------------ norms & scales
class RMSNorm(nn.Module):
    """y = x * alpha / sqrt(eps + mean(x^2)); computed in ``dtype`` (fp32 for 'rms_norm_f32')."""

    def __init__(self, dim: int, eps: float = 1e-5, dtype: torch.dtype | None = None):
        super().__init__()
        self.eps = eps
        self.dtype = dtype
        self.alpha = nn.Parameter(torch.ones(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_dtype = x.dtype
        if self.dtype is not None:
            x = x.to(self.dtype)
        var = self.eps + torch.mean(x * x, dim=-1, keepdim=True)
        return (x * (self.alpha.to(var) * torch.rsqrt(var))).to(x_dtype)


class LayerNormF32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def make_norm(kind: str, dim: int) -> nn.Module:
    """'layer_norm' | 'layer_norm_f32' | 'rms_norm' | 'rms_norm_f32' (Kyutai's names and epsilons)."""
    if kind == "layer_norm":
        return nn.LayerNorm(dim, eps=1e-5)
    if kind == "layer_norm_f32":
        return LayerNormF32(dim, eps=1e-8)
    if kind == "rms_norm":
        return RMSNorm(dim, eps=1e-5)
    if kind == "rms_norm_f32":
        return RMSNorm(dim, eps=1e-8, dtype=torch.float32)
    raise ValueError(f"unknown norm {kind!r}; use layer_norm, layer_norm_f32, rms_norm or rms_norm_f32")


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (Touvron et al. 2021), initialised small."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


# ------------------------------------------------------------------------------ RoPE
def rope_tables(positions: torch.Tensor, head_dim: int, max_period: float) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [B, T] -> cos, sin [B, 1, T, head_dim / 2] (fp32)."""
    half = head_dim // 2
    freqs = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32)
                      * (-math.log(max_period) * 2 / head_dim))
    angles = positions.to(torch.float32)[:, None, :, None] * freqs
    return torch.cos(angles), torch.sin(angles)


def rope_rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleave: bool) -> torch.Tensor:
    """Rotate x [B, H, T, D]: pairs (x[2i], x[2i+1]) as Kyutai does if ``interleave``, else (x[i], x[i + D/2])
    as Llama does. The math is fp32 whatever the dtype of x."""
    half = x.shape[-1] // 2
    if interleave:
        xs = x.float().unflatten(-1, (half, 2))
        xr, xi = xs[..., 0], xs[..., 1]
        out = torch.stack([xr * cos - xi * sin, xr * sin + xi * cos], dim=-1).flatten(-2)
    else:
        xr, xi = x[..., :half].float(), x[..., half:].float()
        out = torch.cat([xr * cos - xi * sin, xr * sin + xi * cos], dim=-1)
    return out.to(x.dtype)


def rope_signed_tables(positions: torch.Tensor, head_dim: int, max_period: float, interleave: bool
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [B, T] -> cos, signed sin [B, 1, T, head_dim] for :func:`rope_rotate_signed`."""
    cos, sin = rope_tables(positions, head_dim, max_period)  # [B, 1, T, D/2]
    if interleave:  # pairs (x[2i], x[2i+1]): cos, cos / -sin, +sin interleaved
        return cos.repeat_interleave(2, dim=-1), torch.stack([-sin, sin], dim=-1).flatten(-2)
    return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)


def rope_rotate_signed(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor, interleave: bool) -> torch.Tensor:
    """:func:`rope_rotate` of fp32 x [..., D] with tables from :func:`rope_signed_tables`, in fewer ops.

    Bit-identical: x_a*cos + x_b*(-sin) == x_a*cos - x_b*sin in IEEE arithmetic.
    """
    if interleave:
        swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    else:
        swapped = x.roll(x.shape[-1] // 2, dims=-1)
    return x * cos + swapped * sin_signed


def apply_rope(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, max_period: float,
               interleave: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding of q [B, H, T, D] and k [B, Hkv, T, D] at ``positions`` [B, T]."""
    cos, sin = rope_tables(positions, q.shape[-1], max_period)
    return rope_rotate(q, cos, sin, interleave), rope_rotate(k, cos, sin, interleave)


# ------------------------------------------------------------------------------ feed-forward
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu, "gelu": F.gelu, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
}


class ActivationGating(nn.Module):
    """Gated FFN: linear_out(act(a) * b) with [a, b] = linear_in(x). No biases.

    The hidden size is 2/3 of ``dim_feedforward`` (21/8 of dim when dim_feedforward == 4 * dim),
    as in Kyutai's models, so a gated layer has no more parameters than the plain MLP.
    """

    def __init__(self, dim: int, dim_feedforward: int, activation: str):
        super().__init__()
        hidden = (21 * dim) // 8 if dim_feedforward == 4 * dim else (2 * dim_feedforward) // 3
        self.activation = _ACTIVATIONS[activation]
        self.linear_in = Linear(dim, 2 * hidden, bias=False)
        self.linear_out = Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear_in(x).unflatten(-1, (2, -1))
        return self.linear_out(self.activation(h[..., 0, :]) * h[..., 1, :])


def apply_per_step(modules: nn.ModuleList, schedule: Sequence[int] | None, x: torch.Tensor,
                   step: int) -> torch.Tensor:
    """Apply ``modules[schedule[step + t]]`` to time step t of x [B, T, C] (one module: apply it)."""
    if len(modules) == 1:
        return modules[0](x)
    ys = []
    for t in range(x.shape[1]):
        i = step + t
        if schedule is not None:
            i = schedule[i]
        ys.append(modules[i](x[:, t:t + 1]))
    return torch.cat(ys, dim=1)


# ------------------------------------------------------------------------------ attention
@dataclass
class _AttnState(State):
    keys: torch.Tensor  # [B, Hkv, capacity, D] ring buffer
    values: torch.Tensor  # [B, Hkv, capacity, D]
    positions: torch.Tensor  # long [B, capacity]: absolute position held by each slot, -1 if empty
    offset: torch.Tensor  # long [B]: position of the next token of each row
    step: int = 0  # tokens seen since the last reset (indexes per-step weights)

    def reset(self, mask: torch.Tensor) -> None:
        self.positions.masked_fill_(mask.view(-1, 1), -1)
        self.offset.masked_fill_(mask, 0)
        self.step = 0

    def skip(self, steps: int) -> None:
        """Move every row ``steps`` steps on, as if it had seen that many steps whose keys and values
        are what the cache holds: attention then costs what it costs that far into a stream (for
        benchmarks of long sessions)."""
        self.positions.copy_(skipped_positions(self.offset, steps, self.positions.shape[1]))
        self.offset += steps
        self.step += steps


def skipped_positions(offset: torch.Tensor, steps: int, capacity: int) -> torch.Tensor:
    """Ring-cache positions [B, capacity] after rows at ``offset`` [B] move ``steps`` on: the last
    ``capacity`` positions, each at its slot (position % capacity), -1 before the start."""
    last = offset[:, None] + steps - capacity + torch.arange(capacity, device=offset.device)  # [B, capacity]
    out = torch.full_like(last, -1)
    return out.scatter_(1, last.remainder(capacity), last.clamp(min=-1))


class StreamingMultiheadAttention(StreamingModule[_AttnState]):
    """Causal self-attention with RoPE, a ring KV cache of ``context`` steps and optional GQA.

    A streaming call of T steps writes its T keys into the ring before attending, as Kyutai's
    implementation does: once the ring is full, its first step no longer sees the keys T - 1 steps
    at the far end of its context. One step at a time equals the batch computation exactly; a codec
    that streams two steps per frame (Mimi) differs from its batch form only past its context, and
    matches Kyutai's streaming Mimi.

    Args:
        kv_repeat: query heads per KV head (1 = plain multi-head attention).
        weights_per_step: number of steps with their own in/out projections (0 = shared).
    """

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = True, context: int | None = None,
                 rope_max_period: float | None = None, rope_interleave: bool = True, kv_repeat: int = 1,
                 weights_per_step: int = 0, weights_per_step_schedule: Sequence[int] | None = None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.kv_repeat = embed_dim, num_heads, kv_repeat
        self.head_dim = embed_dim // num_heads
        self.causal, self.context = causal, context
        self.rope_max_period, self.rope_interleave = rope_max_period, rope_interleave
        self.weights_per_step = weights_per_step
        self.schedule = list(weights_per_step_schedule) if weights_per_step_schedule else None
        mult = 1
        if weights_per_step:
            mult = max(self.schedule) + 1 if self.schedule else weights_per_step
        self.mult = mult
        out_dim = embed_dim + 2 * self.head_dim * (num_heads // kv_repeat)
        self.in_projs = nn.ModuleList([Linear(embed_dim, out_dim, bias=False) for _ in range(mult)])
        self.out_projs = nn.ModuleList([Linear(embed_dim, embed_dim, bias=False) for _ in range(mult)])
        self._register_load_state_dict_pre_hook(self._load_fused_names)

    def _load_fused_names(self, state_dict, prefix, *args, **kwargs) -> None:
        """Accept the older fused names: ``in_proj_weight`` / ``out_proj.weight`` stacked over steps."""
        for old, new in (("in_proj_weight", "in_projs.{i}.weight"), ("in_proj.weight", "in_projs.{i}.weight"),
                         ("out_proj.weight", "out_projs.{i}.weight")):
            if prefix + old in state_dict:
                w = state_dict.pop(prefix + old)
                w = w.view(self.mult, -1, *w.shape[1:])
                for i in range(self.mult):
                    state_dict[prefix + new.format(i=i)] = w[i]

    @property
    def capacity(self) -> int:
        if self.context is not None:
            return self.context
        if self.weights_per_step:
            return self.weights_per_step
        raise RuntimeError("streaming attention needs a bounded context (set context=...)")

    def _init_streaming_state(self, batch_size: int) -> _AttnState:
        w = self.in_projs[0].weight
        shape = (batch_size, self.num_heads // self.kv_repeat, self.capacity, self.head_dim)
        return _AttnState(
            batch_size,
            keys=torch.zeros(shape, dtype=w.dtype, device=w.device),
            values=torch.zeros(shape, dtype=w.dtype, device=w.device),
            positions=torch.full((batch_size, self.capacity), -1, dtype=torch.long, device=w.device),
            offset=torch.zeros(batch_size, dtype=torch.long, device=w.device),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]."""
        B, T, _ = x.shape
        state = self._streaming_state
        step = 0 if state is None else state.step
        qkv = apply_per_step(self.in_projs, self.schedule, x, step)
        H, Hkv, D = self.num_heads, self.num_heads // self.kv_repeat, self.head_dim
        q = qkv[..., : H * D].view(B, T, H, D).transpose(1, 2)
        k = qkv[..., H * D: (H + Hkv) * D].view(B, T, Hkv, D).transpose(1, 2)
        v = qkv[..., (H + Hkv) * D:].view(B, T, Hkv, D).transpose(1, 2)

        steps = torch.arange(T, device=x.device)
        if state is None:
            pos_q = steps.expand(B, T)
        else:
            pos_q = state.offset[:, None] + steps
        if self.rope_max_period is not None:
            q, k = apply_rope(q, k, pos_q, self.rope_max_period, self.rope_interleave)

        if state is None:
            pos_k = pos_q
        else:
            cap = self.capacity
            if T > cap:
                raise ValueError(f"{T} steps at once exceed the attention cache of {cap} steps")
            slots = pos_q % cap  # [B, T]
            idx = slots[:, None, :, None].expand(B, Hkv, T, D)
            state.keys.scatter_(2, idx, k)
            state.values.scatter_(2, idx, v)
            state.positions.scatter_(1, slots, pos_q)
            state.offset += T
            state.step += T
            k, v, pos_k = state.keys, state.values, state.positions

        mask = causal_mask(pos_q, pos_k, self.context)[:, None] if self.causal else None
        if state is not None and T <= 4:
            y = _small_attention(q, k, v, mask, self.kv_repeat)
        else:
            if self.kv_repeat > 1:
                k = k.repeat_interleave(self.kv_repeat, dim=1)
                v = v.repeat_interleave(self.kv_repeat, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, H * D)
        return apply_per_step(self.out_projs, self.schedule, y, step)


def causal_mask(pos_q: torch.Tensor, pos_k: torch.Tensor, context: int | None) -> torch.Tensor:
    """Which cached keys each query sees: pos_q [B, T], pos_k [B, S] (-1: empty slot) -> bool [B, T, S];
    a key is seen when it is filled, not later than the query and, with a context, within it."""
    delta = pos_q[:, :, None] - pos_k[:, None, :]
    mask = (pos_k[:, None, :] >= 0) & (delta >= 0)
    if context is not None:
        mask &= delta < context
    return mask


def _small_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     kv_repeat: int) -> torch.Tensor:
    """Attention of a few streaming queries over the cache, as two small matmuls.

    q [B, H, T, D], k/v [B, Hkv, S, D], mask bool [B, 1, T, S] -> [B, H, T, D]. Grouped query heads
    are folded into the query axis instead of copying the cache ``kv_repeat`` times.
    """
    B, H, T, D = q.shape
    Hkv = k.shape[1]
    qg = q.reshape(B, Hkv, kv_repeat * T, D)
    scores = torch.matmul(qg, k.transpose(-1, -2)) * (D ** -0.5)  # [B, Hkv, rep * T, S]
    if mask is not None:
        m = mask.expand(B, 1, T, mask.shape[-1]).repeat(1, 1, kv_repeat, 1)  # rows ordered (rep, T)
        scores = scores.masked_fill(~m, float("-inf"))
    y = torch.matmul(torch.softmax(scores, dim=-1), v)
    return y.reshape(B, H, T, D)


# ------------------------------------------------------------------------------ layers
@dataclass
class _LayerState(State):
    step: int = 0

    def reset(self, mask: torch.Tensor) -> None:
        self.step = 0


class StreamingTransformerLayer(StreamingModule[_LayerState]):
    """x + ls1(attn(norm1(x))), then + ls2(ffn(norm2(x))). x [B, T, C] -> [B, T, C]."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int | list[int] = 2048,
                 causal: bool = True, context: int | None = None, rope_max_period: float | None = None,
                 rope_interleave: bool = True, norm: str = "layer_norm", layer_scale: float | None = None,
                 gating: str = "none", activation: str = "gelu", kv_repeat: int = 1,
                 weights_per_step: int = 0, weights_per_step_schedule: Sequence[int] | None = None):
        super().__init__()
        self.self_attn = StreamingMultiheadAttention(
            d_model, num_heads, causal=causal, context=context, rope_max_period=rope_max_period,
            rope_interleave=rope_interleave, kv_repeat=kv_repeat, weights_per_step=weights_per_step,
            weights_per_step_schedule=weights_per_step_schedule)
        self.norm1 = make_norm(norm, d_model)
        self.norm2 = make_norm(norm, d_model)
        self.schedule = list(weights_per_step_schedule) if weights_per_step_schedule else None
        self.gating: nn.Module | None = None
        self.linear1: nn.Linear | None = None
        self.linear2: nn.Linear | None = None
        if gating == "none":
            if weights_per_step or isinstance(dim_feedforward, list):
                raise ValueError("per-step weights need a gated feed-forward (gating='silu' or 'gelu')")
            self.activation = _ACTIVATIONS[activation]
            self.linear1 = Linear(d_model, dim_feedforward, bias=False)
            self.linear2 = Linear(dim_feedforward, d_model, bias=False)
        elif weights_per_step:
            n = max(self.schedule) + 1 if self.schedule else weights_per_step
            dims = dim_feedforward if isinstance(dim_feedforward, list) else [dim_feedforward] * n
            self.gating = nn.ModuleList([ActivationGating(d_model, d, gating) for d in dims])
        else:
            self.gating = ActivationGating(d_model, dim_feedforward, gating)
        if layer_scale is None:
            self.layer_scale_1: nn.Module = nn.Identity()
            self.layer_scale_2: nn.Module = nn.Identity()
        else:
            self.layer_scale_1 = LayerScale(d_model, layer_scale)
            self.layer_scale_2 = LayerScale(d_model, layer_scale)

    def _init_streaming_state(self, batch_size: int) -> _LayerState:
        return _LayerState(batch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self._streaming_state
        step = 0 if state is None else state.step
        x = x + self.layer_scale_1(self.self_attn(self.norm1(x)))
        h = self.norm2(x)
        if self.gating is None:
            h = self.linear2(self.activation(self.linear1(h)))
        elif isinstance(self.gating, nn.ModuleList):
            h = apply_per_step(self.gating, self.schedule, h, step)
        else:
            h = self.gating(h)
        if state is not None:
            state.step += x.shape[1]
        return x + self.layer_scale_2(h)


# ------------------------------------------------------------------------------ fused streaming step
def _norm_fn(norm: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if type(norm) is nn.LayerNorm:
        shape, weight, bias, eps = norm.normalized_shape, norm.weight, norm.bias, norm.eps
        return lambda x: F.layer_norm(x, shape, weight, bias, eps)
    return norm


class _LayerPlan:
    """One layer's pieces for :func:`_layer_step`, read once per streaming session (no module lookups
    in the hot loop)."""

    def __init__(self, layer: "StreamingTransformerLayer"):
        attn = layer.self_attn
        self.state = attn._streaming_state
        self.heads = (attn.num_heads, attn.num_heads // attn.kv_repeat, attn.head_dim)
        self.gqa, self.interleave = attn.kv_repeat > 1, attn.rope_interleave
        self.norm1, self.norm2 = _norm_fn(layer.norm1), _norm_fn(layer.norm2)
        self.in_proj, self.out_proj = fast.linear_fn(attn.in_projs[0]), fast.linear_fn(attn.out_projs[0])
        g = layer.gating
        self.gated = g is not None
        self.act = layer.activation if g is None else g.activation
        self.ff_in = fast.linear_fn(layer.linear1 if g is None else g.linear_in)
        self.ff_out = fast.linear_fn(layer.linear2 if g is None else g.linear_out)
        self.ls1 = layer.layer_scale_1.scale if isinstance(layer.layer_scale_1, LayerScale) else None
        self.ls2 = layer.layer_scale_2.scale if isinstance(layer.layer_scale_2, LayerScale) else None


def _layer_step(L: _LayerPlan, x: torch.Tensor, slots: torch.Tensor | int, mask: torch.Tensor | None, n: int,
                rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """A layer's streaming forward for x [B, T, C] -> [B, T, C], given what
    :meth:`StreamingTransformer._forward_step` computed once for all layers: the cache ``slots``
    ([B, T], or the first slot when every row writes the same T consecutive ones), the additive
    attention ``mask`` over the first ``n`` slots and the RoPE tables ([B, T, 1, D])."""
    st = L.state
    B, T, _ = x.shape
    H, Hkv, D = L.heads
    qkv = L.in_proj(L.norm1(x)).view(B, T, H + 2 * Hkv, D)
    qk, v = qkv[:, :, : H + Hkv], qkv[:, :, H + Hkv:].transpose(1, 2)  # [B, T, H + Hkv, D], [B, Hkv, T, D]
    if rope is not None:  # contiguous: attention's fast kernel needs each head's D values in a row
        qk = rope_rotate_signed(qk, *rope, L.interleave).contiguous()
    q, k = qk[:, :, :H].transpose(1, 2), qk[:, :, H:].transpose(1, 2)
    if isinstance(slots, int):
        st.keys[:, :, slots: slots + T] = k
        st.values[:, :, slots: slots + T] = v
    else:
        idx = slots[:, None, :, None].expand(B, Hkv, T, D)
        st.keys.scatter_(2, idx, k)
        st.values.scatter_(2, idx, v)
    y = F.scaled_dot_product_attention(q, st.keys[:, :, :n], st.values[:, :, :n], attn_mask=mask,
                                       enable_gqa=L.gqa)
    y = L.out_proj(y.transpose(1, 2).reshape(B, T, H * D))
    x = x + (y if L.ls1 is None else y * L.ls1)
    h = L.ff_in(L.norm2(x))
    if L.gated:
        h = h.unflatten(-1, (2, -1))
        h = L.act(h[..., 0, :]) * h[..., 1, :]
    else:
        h = L.act(h)
    h = L.ff_out(h)
    return x + (h if L.ls2 is None else h * L.ls2)


class StreamingTransformer(StreamingContainer):
    """A stack of :class:`StreamingTransformerLayer`. x [B, T, C] -> [B, T, C].

    ``positional_embedding`` is 'rope' (interleaved pairs), 'rope_concat' (Llama's halves) or 'none'.
    """

    def __init__(self, d_model: int, num_heads: int, num_layers: int, dim_feedforward: int | list[int] = 2048,
                 causal: bool = True, context: int | None = None, positional_embedding: str = "rope",
                 max_period: float = 10_000.0, **layer_kwargs):
        super().__init__()
        if positional_embedding not in ("rope", "rope_concat", "none"):
            raise ValueError(f"positional_embedding must be rope, rope_concat or none, got {positional_embedding!r}")
        rope = None if positional_embedding == "none" else max_period
        self.layers = nn.ModuleList([
            StreamingTransformerLayer(d_model, num_heads, dim_feedforward, causal=causal, context=context,
                                      rope_max_period=rope, rope_interleave=positional_embedding == "rope",
                                      **layer_kwargs)
            for _ in range(num_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_step_ok(x):
            return self._forward_step(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def _fast_step_ok(self, x: torch.Tensor) -> bool:
        """Streaming inference of a few steps through uniform layers: what :meth:`_forward_step` does."""
        a = self.layers[0].self_attn
        return (a._streaming_state is not None and x.shape[1] <= 4 and x.shape[1] <= a.capacity
                and not torch.is_grad_enabled() and a.mult == 1 and x.dtype == torch.float32)

    def _forward_step(self, x: torch.Tensor) -> torch.Tensor:
        """The layers' streaming forward for x [B, T, C], T small, with the per-step work done once:
        positions, cache slots, the attention mask and the RoPE tables are the same in every layer
        (all layers see the same steps and are reset together). Equal to the layer-by-layer path up
        to float rounding (the same operations, fewer of them)."""
        B, T, _ = x.shape
        a0 = self.layers[0].self_attn
        s0, cap = a0._streaming_state, a0.capacity
        pos_q = s0.offset[:, None] + torch.arange(T, device=x.device)  # [B, T]
        slots = pos_q % cap
        for layer in self.layers:
            st = layer.self_attn._streaming_state
            st.positions.scatter_(1, slots, pos_q)
            st.offset += T
            st.step += T
            layer._streaming_state.step += T
        first = int(slots[0, 0])
        same = bool((slots == torch.arange(first, first + T, device=x.device)).all())  # rows in step, no wrap
        pos_k = s0.positions
        n = cap if bool((pos_k[:, -1] >= 0).any()) else int(pos_q.max()) + 1  # slots [0, n) may be in use
        pos_k = pos_k[:, :n]
        mask = None
        if a0.causal:
            # additive (0 / -inf) once for all layers: a boolean mask is converted in every call
            mask = causal_mask(pos_q, pos_k, a0.context)
            mask = None if bool(mask.all()) else torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill_(
                ~mask, float("-inf"))[:, None]
        rope = None
        if a0.rope_max_period is not None:
            cos, sin = rope_signed_tables(pos_q, a0.head_dim, a0.rope_max_period, a0.rope_interleave)
            rope = cos.transpose(1, 2), sin.transpose(1, 2)  # [B, T, 1, D]
        target = first if same else slots
        for plan in self._plans():
            x = _layer_step(plan, x, target, mask, n, rope)
        return x

    def _plans(self) -> list[_LayerPlan]:
        """The layers' plans for this streaming session (rebuilt when streaming restarts or the fast
        kernels are switched)."""
        key = (id(self.layers[0].self_attn._streaming_state), fast.is_enabled())
        cached = self.__dict__.get("_step_plans")
        if cached is None or cached[0] != key:
            cached = (key, [_LayerPlan(layer) for layer in self.layers])
            self.__dict__["_step_plans"] = cached
        return cached[1]


class ProjectedTransformer(StreamingContainer):
    """A transformer with optional input/output projections, in [B, T, C] or conv layout [B, C, T]."""

    def __init__(self, input_dimension: int, output_dimensions: Sequence[int], d_model: int, *,
                 conv_layout: bool = False, **kwargs):
        super().__init__()
        self.transformer = StreamingTransformer(d_model=d_model, **kwargs)
        self.conv_layout = conv_layout
        self.input_proj = Linear(input_dimension, d_model, bias=False) if input_dimension != d_model else None
        self.output_projs = nn.ModuleList([
            nn.Identity() if d == d_model else Linear(d_model, d, bias=False) for d in output_dimensions])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.conv_layout:
            x = x.transpose(1, 2)
        if self.input_proj is not None:
            x = self.input_proj(x)
        z = self.transformer(x)
        ys = [proj(z) for proj in self.output_projs]
        return [y.transpose(1, 2) for y in ys] if self.conv_layout else ys
