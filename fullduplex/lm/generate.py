"""Streaming generation: one call per 80 ms frame, batched over independent sessions.

    gen = LMGen(model, temp=0.8, temp_text=0.7, top_k=250, top_k_text=25, seed=1234)
    with gen.streaming(batch_size=2):
        for t in range(T):
            out = gen.step(user_codes[:, :, t:t + 1])   # [B, K_user, 1]
            if out is not None:                         # [B, 1 + dep_q, 1]: text token + audio codes
                ...                                     # all for one and the same time index
        gen.reset(torch.tensor([True, False]))          # session 0 starts over, session 1 goes on

Alignment (as Kyutai's ``LMGen``): the frame returned by step s holds the text token and the first
codebook sampled at step s-1 and the acoustic codebooks (delay 1) sampled at step s. Nothing is
returned while the delays fill (the first ``max_delay`` steps); a session that was just reset
returns the ungenerated id -2 in its row while the others return tokens.

Both transformers run a single-step path over the model's own weights, with KV buffers allocated
once per session: the temporal transformer a ring cache of ``context`` steps, the depth transformer
(``dep_q`` steps inside every frame) buffers that are overwritten in place each frame. A step
allocates no new streaming state. The model's weights are read at every step, so quantize or cast
the model before building the generator or after, as you like; do not swap its modules mid-session.

Sampling settings are per row: the constructor's are every row's defaults (``start`` gives them to
all rows), ``set_row_sampling(row, ...)`` changes one row, ``reset`` leaves them alone. While all rows
agree, a step samples exactly as :func:`sample_token` does (the same draws as Kyutai's ``LMGen``);
rows that differ are sampled together by :func:`sample_rows`.

Taking the floor and holding it can be sampled differently: while a session's text stream has been
PAD for ``QUIET_FRAMES`` frames (the model is silent: it is listening, or deciding whether to speak)
its text token is drawn with ``onset_temp_text`` and ``onset_padding_bonus`` instead of ``temp_text``
and ``padding_bonus`` (None: the same). An eager onset then does not make the model hold on to its
turn when the user barges in as long as an eager bonus at every frame does.
"""

from __future__ import annotations

import contextlib
import math
import operator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..nn import RMSNorm, fast
from ..nn.transformer import (causal_mask, rope_rotate, rope_rotate_signed, rope_signed_tables, rope_tables,
                              skipped_positions)
from .model import LMModel, sin_embedding


class _Lin:
    """A linear layer read once: plain linears run as :func:`fast.linear_fn`, dynamic-int8 ones straight through their
    kernel (skipping the module call), anything else is called as a module."""

    __slots__ = ("plain", "packed", "module")

    def __init__(self, m: nn.Module):
        plain = isinstance(m, nn.Linear)
        self.plain = fast.linear_fn(m) if plain else None
        packed = getattr(m, "_packed_params", None)
        int8 = (not plain and packed is not None and packed.dtype == torch.qint8
                and (getattr(m, "version", None) or 0) >= 4)
        self.packed = packed._packed_params if int8 else None
        self.module = None if plain or int8 else m

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.plain is not None:
            return self.plain(x)
        if self.packed is not None:
            return _qlinear(x, self.packed, True)  # what the module's forward calls (7-bit activations)
        return self.module(x)


def _qlinear(x: torch.Tensor, packed, reduce_range: bool) -> torch.Tensor:
    return torch.ops.quantized.linear_dynamic(x, packed, reduce_range)


class _Norm:
    """An fp32 RMSNorm as one fused call (F.rms_norm: x * rsqrt(mean(x^2) + eps) * alpha, the operations
    of nn.RMSNorm up to rounding); any other norm is called as a module."""

    __slots__ = ("alpha", "eps", "module")

    def __init__(self, m: nn.Module):
        self.module = m
        rms = isinstance(m, RMSNorm) and m.alpha.dtype == torch.float32 and m.dtype in (None, torch.float32)
        self.alpha = m.alpha.view(-1) if rms else None
        self.eps = m.eps if rms else 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.alpha is None or x.dtype != torch.float32:
            return self.module(x)
        return F.rms_norm(x, self.alpha.shape, self.alpha, self.eps)


class _Layer:
    """The pieces of one nn transformer layer for one per-step weight index w."""

    __slots__ = ("norm1", "in_proj", "out_proj", "norm2", "ff_in", "ff_out", "act", "gated", "ls1", "ls2")

    def __init__(self, layer: nn.Module, w: int):
        attn = layer.self_attn
        pick = (lambda ms: ms[w if len(ms) > 1 else 0])
        self.norm1, self.norm2 = _Norm(layer.norm1), _Norm(layer.norm2)
        self.in_proj, self.out_proj = _Lin(pick(attn.in_projs)), _Lin(pick(attn.out_projs))
        g = layer.gating
        if g is None:
            self.gated, self.act = False, layer.activation
            self.ff_in, self.ff_out = _Lin(layer.linear1), _Lin(layer.linear2)
        else:
            if isinstance(g, nn.ModuleList):
                g = pick(g)
            self.gated, self.act = True, g.activation
            self.ff_in, self.ff_out = _Lin(g.linear_in), _Lin(g.linear_out)
        self.ls1 = None if isinstance(layer.layer_scale_1, nn.Identity) else layer.layer_scale_1
        self.ls2 = None if isinstance(layer.layer_scale_2, nn.Identity) else layer.layer_scale_2

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + ffn(norm2(x)) for x [B, T, C]."""
        z = self.ff_in(self.norm2(x))
        if self.gated:
            a, b = z.chunk(2, dim=-1)
            z = self.act(a) * b
        else:
            z = self.act(z)
        z = self.ff_out(z)
        return x + (z if self.ls2 is None else self.ls2(z))


def _rope_step_tables(positions: torch.Tensor, head_dim: int, max_period: float, interleave: bool
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [B] -> cos, signed sin [B, 1, head_dim] for :func:`rope_rotate_signed` of [B, N, D]."""
    cos, sin = rope_signed_tables(positions[:, None], head_dim, max_period, interleave)  # [B, 1, 1, D]
    return cos[:, :, 0], sin[:, :, 0]


def sample_token(logits: torch.Tensor, use_sampling: bool, temp: float, top_k: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [B, V] -> tokens long [B].

    Greedy when ``use_sampling`` is False or temp <= 0. Otherwise softmax(logits / temp), restricted
    to the top_k most likely (0 = all), drawn as argmax(p / E) with E ~ Exp(1) (equivalent to a
    categorical draw, without a device sync).
    """
    if not use_sampling or temp <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temp, dim=-1)
    idx = None
    if 0 < top_k:
        probs, idx = torch.topk(probs, min(top_k, probs.shape[-1]), dim=-1)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    choice = (probs / noise).argmax(dim=-1, keepdim=True)
    return (choice if idx is None else idx.gather(-1, choice))[:, 0]


def sampling_probs(logits: torch.Tensor, temp: float, top_k: int) -> torch.Tensor:
    """logits [..., V] -> the distribution ``sample_token`` draws from [..., V]: softmax(logits / temp)
    renormalised over the top_k most likely (0 = all); one-hot on the argmax when temp <= 0."""
    if temp <= 0:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    probs = torch.softmax(logits.float() / temp, dim=-1)
    if 0 < top_k < probs.shape[-1]:
        kth = torch.topk(probs, top_k, dim=-1).values[..., -1:]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    return probs / probs.sum(dim=-1, keepdim=True)


MAX_PADDING_BONUS = 10.0


def _finite(value) -> float | None:
    """A finite float from a number (not a bool or a string), else None."""
    try:
        v = float(value) if not isinstance(value, (bool, str, bytes)) else None
    except (TypeError, ValueError):
        return None
    return v if v is not None and math.isfinite(v) else None


def _check_temp(name: str, value) -> float:
    v = _finite(value)
    if v is None or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0 = greedy), got {value!r}")
    return v


def _check_top_k(name: str, value) -> int:
    try:
        v = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        v = int(value) if isinstance(value, float) and value.is_integer() else None
    if v is None or v < 0:
        raise ValueError(f"{name} must be an integer >= 0 (0 = no limit), got {value!r}")
    return v


def _check_flag(name: str, value) -> bool:
    if value not in (True, False):  # bool, numpy bool, 0 or 1
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_bonus(name: str, value) -> float:
    v = _finite(value)
    if v is None or abs(v) > MAX_PADDING_BONUS:
        raise ValueError(f"{name} must be a number in [-{MAX_PADDING_BONUS:g}, {MAX_PADDING_BONUS:g}] "
                         f"(added to the text PAD logit; 0 = off), got {value!r}")
    return v


def check_row_sampling(temp=None, temp_text=None, top_k=None, top_k_text=None, use_sampling=None,
                       padding_bonus=None, onset_temp_text=None, onset_padding_bonus=None) -> dict:
    """The given (not None) sampling settings, checked and converted: temperatures to finite floats
    >= 0, top-k to ints >= 0, use_sampling to bool, bonuses to floats in [-10, 10].
    ValueError names the first bad one."""
    out = {}
    for name, value, check in (("temp", temp, _check_temp), ("temp_text", temp_text, _check_temp),
                               ("top_k", top_k, _check_top_k), ("top_k_text", top_k_text, _check_top_k),
                               ("use_sampling", use_sampling, _check_flag),
                               ("padding_bonus", padding_bonus, _check_bonus),
                               ("onset_temp_text", onset_temp_text, _check_temp),
                               ("onset_padding_bonus", onset_padding_bonus, _check_bonus)):
        if value is not None:
            out[name] = check(name, value)
    return out


ROW_KEYS = ("temp", "temp_text", "top_k", "top_k_text", "use_sampling", "padding_bonus",  # what one row may set
            "onset_temp_text", "onset_padding_bonus")
SAMPLING_KEYS = (*ROW_KEYS, "seed")
# the onset settings default to None: the same as temp_text and padding_bonus
DEFAULT_SAMPLING = dict(temp=0.8, temp_text=0.7, top_k=250, top_k_text=25, use_sampling=True, padding_bonus=0.0,
                        onset_temp_text=None, onset_padding_bonus=None, seed=None)
QUIET_FRAMES = 10  # a text stream PAD for this many frames (0.8 s) is a silent model: onset settings apply


def sampling_settings(overrides: dict | None = None, base: dict | None = None) -> dict:
    """Moshi's defaults, then the checkpoint's, then the caller's; unknown keys are an error."""
    out = dict(DEFAULT_SAMPLING)
    for d in (base or {}), (overrides or {}):
        unknown = sorted(set(d) - set(SAMPLING_KEYS))
        if unknown:
            raise ValueError(f"unknown sampling settings {unknown}; known: {list(SAMPLING_KEYS)}")
        out.update({k: v for k, v in d.items() if v is not None})
    return out


def check_sampling(sampling: dict | None) -> dict:
    """A system's default sampling: known keys (ValueError names them) and valid values; returns the
    full settings it gives."""
    out = sampling_settings(sampling)
    check_row_sampling(**{k: v for k, v in (sampling or {}).items() if k in ROW_KEYS})
    return out


class _RowPlan:
    """How one stream (text, or audio) is sampled this session: its settings per row and, when rows
    differ, the tensors of the per-row path (built when settings change, not per step)."""

    __slots__ = ("uniform", "use_sampling", "temp", "top_k", "all_greedy", "greedy", "temps", "ks", "device",
                 "vocab", "mode", "kmax", "drop", "kidx", "open_rows")

    def __init__(self, rows: list[tuple[bool, float, int]], device):
        key = [("greedy",) if not u or t <= 0 else (t, k) for u, t, k in rows]
        self.uniform = all(x == key[0] for x in key)
        self.use_sampling, self.temp, self.top_k = rows[0]  # what every row does when uniform
        # per-row path: greedy rows (no sampling, temperature 0 or top-k 1) take the argmax of the logits
        greedy = [len(x) == 1 or x[1] == 1 for x in key]
        self.all_greedy = all(greedy)
        self.greedy = None if not any(greedy) else torch.tensor(greedy, device=device)
        self.temps = torch.tensor([[1.0 if g else x[0]] for g, x in zip(greedy, key)], device=device)  # [B, 1]
        self.ks = [None if g else x[1] for g, x in zip(greedy, key)]  # None: a greedy row
        self.device = device
        self.vocab = -1  # the top-k tensors below are built for this vocabulary size on first use
        self.mode, self.kmax, self.drop, self.kidx, self.open_rows = "all", 0, None, None, None

    def ranks(self, vocab: int) -> None:
        """The top-k work for logits over ``vocab`` (greedy rows take no part):

        all        no sampling row limits its top-k: draw over the whole vocabulary
        topk       every sampling row does: take the largest k (kmax), drop ranks >= each row's k ([B, kmax])
        threshold  some do, some do not: a limited row keeps the probabilities >= its k-th largest
                   (kidx [B, 1]), the others (open_rows [B, 1]) keep all; no sort of the whole vocabulary
        """
        dev = self.device
        self.vocab = vocab
        ks = [None if k is None else (k if 0 < k < vocab else 0) for k in self.ks]  # 0: no limit
        limited = [k for k in ks if k]
        self.mode, self.kmax, self.drop, self.kidx, self.open_rows = "all", 0, None, None, None
        if not limited:
            return
        self.kmax = max(limited)
        if all(k is None or k for k in ks):
            self.mode = "topk"
            row_k = torch.tensor([self.kmax if k is None else k for k in ks], device=dev)
            self.drop = torch.arange(self.kmax, device=dev)[None] >= row_k[:, None]
        else:
            self.mode = "threshold"
            self.kidx = torch.tensor([[k - 1 if k else 0] for k in ks], device=dev)
            self.open_rows = torch.tensor([[not k] for k in ks], device=dev)


def sample_rows(logits: torch.Tensor, plan: _RowPlan, generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [B, V] -> tokens long [B], each row with its own settings (``plan``).

    While all rows agree this is :func:`sample_token`. Otherwise temperatures divide as a [B, 1]
    tensor; top-k takes the largest k of the rows and gives the ranks past each row's own k
    probability 0 (or, when some rows have no limit, a threshold at each limited row's k-th largest
    probability: ties with it are kept); greedy rows take the argmax of their logits, as
    :func:`sample_token` does. The draw is sample_token's: argmax(p / E), E ~ Exp(1).
    """
    if plan.uniform:
        return sample_token(logits, plan.use_sampling, plan.temp, plan.top_k, generator)
    if plan.all_greedy:
        return logits.argmax(dim=-1)
    if plan.vocab != logits.shape[-1]:
        plan.ranks(logits.shape[-1])
    probs = torch.softmax(logits.float() / plan.temps, dim=-1)
    idx = None
    if plan.mode == "topk":
        probs, idx = torch.topk(probs, plan.kmax, dim=-1)
        probs.masked_fill_(plan.drop, 0.0)
    elif plan.mode == "threshold":
        thr = torch.topk(probs, plan.kmax, dim=-1).values.gather(-1, plan.kidx).masked_fill_(plan.open_rows, 0.0)
        probs.masked_fill_(probs < thr, 0.0)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    choice = (probs / noise).argmax(dim=-1, keepdim=True)
    tokens = (choice if idx is None else idx.gather(-1, choice))[:, 0]
    if plan.greedy is not None:
        tokens = torch.where(plan.greedy, logits.argmax(dim=-1), tokens)
    return tokens


@dataclass
class _GenState:
    batch_size: int
    cache: torch.Tensor           # long [B, K, max_delay + 2]: ring of recent tokens of every stream
    offsets: torch.Tensor         # long [B]: steps since each session (re)started
    offsets_py: list[int]         # the same on the host, to decide on None without a sync
    keys: list[torch.Tensor]      # per temporal layer [B, Hkv, capacity, D]: ring KV cache
    values: list[torch.Tensor]
    slot_pos: torch.Tensor        # long [B, capacity]: step held by each cache slot, -1 if empty
    filled: int                   # slots [0, filled) may be in use (any session)
    dep_keys: list[torch.Tensor]  # per depformer layer [B, Hkv, dep_q, D], overwritten every frame
    dep_values: list[torch.Tensor]
    quiet: torch.Tensor           # long [B]: frames since the session's text stream last held a word


class LMGen:
    """Streaming generator over an :class:`LMModel` (eval mode, no gradients)."""

    def __init__(self, model: LMModel, use_sampling: bool = True, temp: float = 0.8, temp_text: float = 0.7,
                 top_k: int = 250, top_k_text: int = 25, seed: int | None = None,
                 generator: torch.Generator | None = None, check_inputs: bool = True,
                 max_steps: int | None = None, padding_bonus: float = 0.0,
                 onset_temp_text: float | None = None, onset_padding_bonus: float | None = None):
        if model.training:
            raise ValueError("LMGen needs the model in eval mode (call model.eval())")
        self.model = model
        self.cfg = c = model.cfg
        # every row's defaults (start() gives them to all rows; set_row_sampling changes one row)
        self.use_sampling = _check_flag("use_sampling", use_sampling)
        self.temp, self.temp_text = _check_temp("temp", temp), _check_temp("temp_text", temp_text)
        self.top_k, self.top_k_text = _check_top_k("top_k", top_k), _check_top_k("top_k_text", top_k_text)
        # added to the text PAD logit before sampling (Kyutai's TTS calls it padding_bonus): below 0 the
        # model puts words in its text stream more readily, so it takes turns sooner and holds them longer
        self.padding_bonus = _check_bonus("padding_bonus", padding_bonus)
        # the text settings while the model is silent (module docstring); None: the ones above
        self.onset_temp_text = None if onset_temp_text is None else _check_temp("onset_temp_text", onset_temp_text)
        self.onset_padding_bonus = None if onset_padding_bonus is None else \
            _check_bonus("onset_padding_bonus", onset_padding_bonus)
        self._row_settings: list[dict] = []
        self._pad_bonus: torch.Tensor | None = None
        self._onset: tuple[torch.Tensor, torch.Tensor] | None = None  # while silent: PAD bonus [B], scale [B, 1]
        self._text_plan: _RowPlan | None = None
        self._audio_plan: _RowPlan | None = None
        if seed is not None and generator is None:
            generator = torch.Generator(device=model.device).manual_seed(seed)
        self.generator = generator  # None: torch's global RNG
        self.check_inputs = check_inputs
        dev = model.device
        self.num_gen = c.dep_q + (0 if c.textless else 1)  # rows generated: text + model audio
        self.delays = torch.tensor(c.delays, dtype=torch.long, device=dev)
        self.user_delays = self.delays[self.num_gen:]
        self.gen_delays = self.delays[: self.num_gen]
        self.initial = model.initial_tokens()  # [1, K, 1]
        self._state: _GenState | None = None
        # depformer constants
        self._dep_sin = None
        if c.depformer_pos_emb in ("sin", "sin_rope") and c.dep_q:
            self._dep_sin = sin_embedding(torch.arange(c.dep_q, device=dev), c.depformer_dim,
                                          c.depformer_max_period).to(model.dtype)[:, None]  # [dep_q, 1, Dd]
        self._dep_rope = None
        self._dep_interleave = c.depformer_pos_emb != "rope_concat"
        self._dep_heads = []
        if model.depformer is not None:
            self._dep_heads = [(layer.self_attn.num_heads, layer.self_attn.num_heads // layer.self_attn.kv_repeat,
                                layer.self_attn.head_dim) for layer in model.depformer.layers]
            if c.depformer_pos_emb in ("rope", "sin_rope", "rope_concat"):
                self._dep_rope = [rope_tables(torch.full((1, 1), cb, device=dev), self._dep_heads[0][2],
                                               c.depformer_max_period) for cb in range(c.dep_q)]
        # temporal constants: the KV cache holds `context` steps; without a context, `max_steps`
        if c.context is None and max_steps is None:
            raise ValueError("the model has no attention context: give LMGen(max_steps=...) to size its KV cache")
        self.capacity = c.context if c.context is not None else max_steps
        self._rope = c.positional_embedding in ("rope", "sin_rope", "rope_concat")
        self._interleave = c.positional_embedding != "rope_concat"
        a0 = model.transformer.layers[0].self_attn
        self._heads = (a0.num_heads, a0.num_heads // a0.kv_repeat, a0.head_dim)

    # ------------------------------------------------------------------ session management
    def start(self, batch_size: int) -> None:
        """Begin streaming ``batch_size`` sessions (see :meth:`streaming`)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        m, c, dev = self.model, self.cfg, self.model.device
        cache = torch.full((batch_size, c.num_codebooks, c.max_delay + 2), c.ungenerated_token_id,
                           dtype=torch.long, device=dev)
        _, Hkv, D = self._heads
        shape = (batch_size, Hkv, self.capacity, D)
        t_keys = [torch.zeros(shape, dtype=m.dtype, device=dev) for _ in m.transformer.layers]
        t_values = [torch.zeros(shape, dtype=m.dtype, device=dev) for _ in m.transformer.layers]
        slot_pos = torch.full((batch_size, self.capacity), -1, dtype=torch.long, device=dev)
        keys, values = [], []
        if m.depformer is not None:
            for layer in m.depformer.layers:
                a = layer.self_attn
                shape = (batch_size, a.num_heads // a.kv_repeat, c.dep_q, a.head_dim)
                keys.append(torch.zeros(shape, dtype=m.dtype, device=dev))
                values.append(torch.zeros(shape, dtype=m.dtype, device=dev))
        self._rows = torch.arange(batch_size, device=dev)
        self._build_plan()
        self._state = _GenState(batch_size, cache, torch.zeros(batch_size, dtype=torch.long, device=dev),
                                [0] * batch_size, t_keys, t_values, slot_pos, 0, keys, values,
                                torch.full((batch_size,), QUIET_FRAMES, dtype=torch.long, device=dev))
        defaults = dict(use_sampling=self.use_sampling, temp=self.temp, temp_text=self.temp_text,
                        top_k=self.top_k, top_k_text=self.top_k_text, padding_bonus=self.padding_bonus,
                        onset_temp_text=self.onset_temp_text, onset_padding_bonus=self.onset_padding_bonus)
        self._row_settings = [dict(defaults) for _ in range(batch_size)]
        self._plan_sampling()

    def stop(self) -> None:
        self._state = None

    @contextlib.contextmanager
    def streaming(self, batch_size: int):
        self.start(batch_size)
        try:
            yield self
        finally:
            self.stop()

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Restart the sessions where mask (bool [B]) is True (all when None); the others go on."""
        st = self._require_state()
        if mask is None:
            mask = torch.ones(st.batch_size, dtype=torch.bool)
        mask = torch.as_tensor(mask, dtype=torch.bool).view(-1)
        if mask.numel() != st.batch_size:
            raise ValueError(f"reset mask has {mask.numel()} rows, generation runs {st.batch_size} sessions")
        dmask = mask.to(st.offsets.device)
        st.slot_pos.masked_fill_(dmask[:, None], -1)
        st.offsets.masked_fill_(dmask, 0)
        st.quiet.masked_fill_(dmask, QUIET_FRAMES)  # a session (re)starts silent
        st.cache.masked_fill_(dmask[:, None, None], self.cfg.ungenerated_token_id)
        for i, r in enumerate(mask.tolist()):
            if r:
                st.offsets_py[i] = 0

    def skip(self, steps: int) -> None:
        """Move every session ``steps`` steps on with no tokens generated: the KV cache then spans what
        it would that far into a conversation (its keys and values are whatever it holds), so a step
        costs what it would there. For benchmarks of long sessions."""
        st = self._require_state()
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        st.slot_pos.copy_(skipped_positions(st.offsets, steps, self.capacity))
        st.filled = min(self.capacity, max(st.offsets_py) + steps)
        st.offsets += steps
        st.offsets_py = [o + steps for o in st.offsets_py]

    # ------------------------------------------------------------------ per-row sampling
    def set_row_sampling(self, row: int, temp: float | None = None, temp_text: float | None = None,
                         top_k: int | None = None, top_k_text: int | None = None,
                         use_sampling: bool | None = None, padding_bonus: float | None = None,
                         onset_temp_text: float | None = None, onset_padding_bonus: float | None = None) -> None:
        """Change the sampling settings of session ``row`` (None: leave that one as is).

        Temperatures are finite numbers >= 0, top-k integers >= 0 (0 = the whole vocabulary); a
        temperature of 0 or use_sampling False makes that stream greedy for this row; padding_bonus is
        added to this row's text PAD logit (below 0: words come more readily); the onset settings
        replace temp_text and padding_bonus while the model is silent (module docstring). Invalid values
        raise ValueError and change nothing. The settings last until the next start() or call.
        """
        st = self._require_state()
        if isinstance(row, bool) or not hasattr(row, "__index__") or not 0 <= int(row) < st.batch_size:
            raise ValueError(f"row must be an integer in [0, {st.batch_size}), got {row!r}")
        new = check_row_sampling(temp, temp_text, top_k, top_k_text, use_sampling, padding_bonus,
                                 onset_temp_text, onset_padding_bonus)
        settings = self._row_settings[int(row)]
        if any(settings[k] != v for k, v in new.items()):
            settings.update(new)
            self._plan_sampling()

    def row_sampling(self, row: int) -> dict:
        """The settings session ``row`` samples with (the keys of ROW_KEYS)."""
        self._require_state()
        return dict(self._row_settings[row])

    def _plan_sampling(self) -> None:
        dev, rows = self.model.device, self._row_settings
        self._text_plan = _RowPlan([(r["use_sampling"], r["temp_text"], r["top_k_text"]) for r in rows], dev)
        self._audio_plan = _RowPlan([(r["use_sampling"], r["temp"], r["top_k"]) for r in rows], dev)
        bonus = [r["padding_bonus"] for r in rows]
        self._pad_bonus = None if not any(bonus) else torch.tensor(bonus, dtype=self.model.dtype, device=dev)  # [B]
        # while silent: the onset bonus, and the logits scaled so that dividing by temp_text divides them
        # by onset_temp_text (top-k ranks are unchanged; an onset temperature of 0 is all but greedy)
        onset_bonus = [b if r["onset_padding_bonus"] is None else r["onset_padding_bonus"]
                       for b, r in zip(bonus, rows)]
        scale = [1.0 if r["onset_temp_text"] is None or r["temp_text"] <= 0
                 else r["temp_text"] / max(r["onset_temp_text"], 1e-4) for r in rows]
        self._onset = None
        if onset_bonus != bonus or any(x != 1.0 for x in scale):
            self._onset = (torch.tensor(onset_bonus, dtype=self.model.dtype, device=dev),
                           torch.tensor(scale, dtype=self.model.dtype, device=dev)[:, None])

    def _require_state(self) -> _GenState:
        if self._state is None:
            raise RuntimeError("call LMGen.step() inside `with gen.streaming(batch_size):` (or after start())")
        return self._state

    # ------------------------------------------------------------------ one frame
    @torch.no_grad()
    def step(self, user_codes: torch.Tensor) -> torch.Tensor | None:
        """user_codes [B, K_user, 1] -> None while delays fill, else long [B, 1 + dep_q, 1] (text, audio)."""
        st = self._require_state()
        c, m = self.cfg, self.model
        B, CT = st.batch_size, st.cache.shape[2]
        ku = c.num_user_codebooks
        if user_codes.dim() != 3 or user_codes.shape[0] != B or user_codes.shape[1] != ku or user_codes.shape[2] != 1:
            raise ValueError(f"user_codes must be [{B}, {ku}, 1] ({B} sessions, {ku} user codebooks, one frame), "
                             f"got {tuple(user_codes.shape)}")
        if self.check_inputs and (user_codes.is_floating_point()
                                  or bool(((user_codes < -1) | (user_codes >= c.card)).any())):
            m.check_codes(user_codes, ku, first_row=self.num_gen, what="user_codes")  # raises, naming the stream
        # write the user's codes where their (delayed) stream will read them
        if ku:
            pos = (st.offsets[:, None] + self.user_delays) % CT
            st.cache[:, self.num_gen:].scatter_(2, pos[..., None], user_codes.to(torch.long))
        # read this step's input column; streams still inside their delay read the initial token
        col = (st.offsets % CT)[:, None, None].expand(B, c.num_codebooks, 1)
        tokens = st.cache.gather(2, col)
        is_init = st.offsets[:, None, None] <= self.delays[:, None]
        tokens = torch.where(is_init, self.initial, tokens)

        h = self._temporal(tokens)  # [B, 1, dim]
        text = None
        if self._text_linear is not None:
            logits = self._text_linear(h)[:, 0]  # [B, text_card], this step's own tensor
            pad = c.existing_text_padding_id
            bonus, silent = self._pad_bonus, None
            if self._onset is not None:
                silent = st.quiet >= QUIET_FRAMES  # [B]
                bonus = torch.where(silent, self._onset[0], 0.0 if bonus is None else bonus)
            if bonus is not None:
                logits[:, pad] += bonus
            if silent is not None:  # the bonus is tempered too, as temp_text tempers padding_bonus
                logits = torch.where(silent[:, None], logits * self._onset[1], logits)
            text = sample_rows(logits, self._text_plan, self.generator)
            st.quiet.add_(1).masked_fill_(text != pad, 0)
        audio = self._depformer_frame(text, h)  # [B, dep_q]

        st.offsets += 1
        new = audio if text is None else torch.cat([text[:, None], audio], dim=1)
        col = (st.offsets % CT)[:, None, None].expand(B, self.num_gen, 1)
        st.cache[:, : self.num_gen].scatter_(2, col, new[..., None])
        st.offsets_py = [o + 1 for o in st.offsets_py]
        if max(st.offsets_py) <= c.max_delay:
            return None
        idx = (st.offsets[:, None] - c.max_delay + self.gen_delays) % CT
        out = st.cache[:, : self.num_gen].gather(2, idx[..., None])
        if min(st.offsets_py) <= c.max_delay:
            out[st.offsets <= c.max_delay] = c.ungenerated_token_id
        return out

    # ------------------------------------------------------------------ per-session plan
    def _build_plan(self) -> None:
        """Read the model's modules once per session: tensors and small callables for the hot loop."""
        m, c = self.model, self.cfg
        a = c.audio_offset
        self._emb = [(a + k, e.weight) for k, e in enumerate(m.emb)]
        if m.text_emb is not None:
            self._emb.append((0, m.text_emb.weight))
        self._t_layers = [_Layer(layer, 0) for layer in m.transformer.layers]
        self._out_norm = _Norm(m.out_norm)
        self._text_linear = None if m.text_linear is None else _Lin(m.text_linear)
        self._d_steps = []
        for cb in range(c.dep_q):
            sched = c.depformer_weights_per_step_schedule
            w = sched[cb] if sched else cb
            emb = m.depformer_text_emb if cb == 0 else m.depformer_emb[cb - 1]
            low_rank = None if emb is None or emb.low_rank is None else _Lin(emb.low_rank)
            norm = None if isinstance(m.depformer_norms[cb], nn.Identity) else m.depformer_norms[cb]
            self._d_steps.append((_Lin(m.depformer_in[m.depformer_in_index(cb)]),
                                  None if emb is None else emb.weight, low_rank,
                                  [_Layer(layer, w) for layer in m.depformer.layers],
                                  norm, _Lin(m.linears[cb])))

    # ------------------------------------------------------------------ temporal transformer, one frame
    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, 1] -> summed embeddings [B, 1, dim]; the zero token (-1) adds exactly nothing."""
        valid = tokens >= 0
        t = tokens.clamp(min=0)
        x = None
        for row, w in self._emb:
            e = F.embedding(t[:, row], w).masked_fill_(~valid[:, row, :, None], 0.0)
            x = e if x is None else x + e
        return x

    def _temporal(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, 1] (this step's inputs) -> hidden [B, 1, dim] after out_norm, using the KV cache."""
        st, c = self._state, self.cfg
        B = tokens.shape[0]
        pos = st.offsets  # [B]
        if c.context is None and max(st.offsets_py) >= self.capacity:
            raise RuntimeError(f"generation ran past max_steps={self.capacity} for a model without context")
        x = self._embed(tokens)
        if c.positional_embedding in ("sin", "sin_rope"):
            x = x + sin_embedding(pos[:, None], c.dim, c.max_period).to(x.dtype)
        # cache slot, attention mask and RoPE tables of this step: shared by all layers
        slot = pos % self.capacity
        rows = self._rows
        st.slot_pos[rows, slot] = pos
        st.filled = n = min(self.capacity, st.filled + 1)
        sp = st.slot_pos[:, :n]
        if c.causal:
            mask = causal_mask(pos[:, None], sp, c.context)[:, 0]
        else:
            mask = sp >= 0
        mask = None if bool(mask.all()) else mask[:, None, None]  # [B, 1, 1, n]; None: every slot visible
        slots = {o % self.capacity for o in st.offsets_py}
        same_slot = slots.pop() if len(slots) == 1 else None  # all sessions write the same slot: a slice
        H, Hkv, D = self._heads
        rope = _rope_step_tables(pos, D, c.max_period, self._interleave) if self._rope else None
        gqa = Hkv != H
        for li, L in enumerate(self._t_layers):
            qkv = L.in_proj(L.norm1(x)).view(B, H + 2 * Hkv, D)
            qk, v = qkv[:, : H + Hkv], qkv[:, H + Hkv:]
            if rope is not None and x.dtype == torch.float32:
                qk = rope_rotate_signed(qk, rope[0], rope[1], self._interleave)
            elif rope is not None:
                cs = rope_tables(pos[:, None], D, c.max_period)
                qk = rope_rotate(qk[:, :, None], *cs, self._interleave)[:, :, 0]
            q = qk[:, :H, None]  # [B, H, 1, D]
            keys, values = st.keys[li], st.values[li]
            if same_slot is not None:
                keys[:, :, same_slot] = qk[:, H:]
                values[:, :, same_slot] = v
            else:
                keys[rows, :, slot] = qk[:, H:]
                values[rows, :, slot] = v
            y = F.scaled_dot_product_attention(q, keys[:, :, :n], values[:, :, :n], attn_mask=mask, enable_gqa=gqa)
            y = L.out_proj(y.reshape(B, 1, H * D))  # [B, H, 1, D] -> [B, 1, H * D]
            x = x + (y if L.ls1 is None else L.ls1(y))
            x = L.feed_forward(x)
        return self._out_norm(x)

    # ------------------------------------------------------------------ depth transformer, one frame
    def _depformer_frame(self, text: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
        """text [B] | None, h [B, 1, dim] -> audio tokens [B, dep_q], one codebook after another.

        Step cb attends to steps 0..cb of this frame: its keys/values are written at index cb of the
        per-layer buffers, which are simply overwritten by the next frame.
        """
        st = self._state
        B = h.shape[0]
        prev = text
        out = []
        audio_plan = self._audio_plan
        for cb, (dep_in, emb_w, low_rank, layers, norm, head) in enumerate(self._d_steps):
            x = dep_in(h)
            if prev is not None:
                e = F.embedding(prev[:, None], emb_w)
                x = x + (e if low_rank is None else low_rank(e))
            if self._dep_sin is not None:
                x = x + self._dep_sin[cb]
            for li, L in enumerate(layers):
                H, Hkv, D = self._dep_heads[li]
                qkv = L.in_proj(L.norm1(x)).view(B, H + 2 * Hkv, 1, D)
                q, k, v = qkv[:, :H], qkv[:, H: H + Hkv], qkv[:, H + Hkv:]
                if self._dep_rope is not None:
                    cos, sin = self._dep_rope[cb]
                    q, k = rope_rotate(q, cos, sin, self._dep_interleave), rope_rotate(k, cos, sin, self._dep_interleave)
                keys, values = st.dep_keys[li], st.dep_values[li]
                keys[:, :, cb: cb + 1] = k
                values[:, :, cb: cb + 1] = v
                if cb == 0 and Hkv == H:
                    y = v  # one key: the attention weight is exactly 1
                else:
                    y = F.scaled_dot_product_attention(q, keys[:, :, : cb + 1], values[:, :, : cb + 1],
                                                       enable_gqa=Hkv != H)
                y = L.out_proj(y.reshape(B, 1, H * D))  # [B, H, 1, D] -> [B, 1, H * D]
                x = x + (y if L.ls1 is None else L.ls1(y))
                x = L.feed_forward(x)
            logits = head(x if norm is None else norm(x))[:, 0]
            prev = sample_rows(logits, audio_plan, self.generator)
            out.append(prev)
        if not out:  # no audio generated (a text-only model)
            return torch.zeros(B, 0, dtype=torch.long, device=h.device)
        return torch.stack(out, dim=1)
