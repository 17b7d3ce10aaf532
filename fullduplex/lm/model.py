"""The multistream speech-text LM (Moshi architecture).

At every 80 ms frame the *temporal transformer* reads the sum of the embeddings of all streams
(text, the model's audio codebooks, the user's audio codebooks) and predicts the model's next text
token; the *depth transformer* ("depformer") then predicts the model's audio codebooks of that frame
one after another, each conditioned on the temporal output and the previous token of the frame.

Streams are shifted by per-stream acoustic delays: stream k at step t holds code t - delays[k],
and the first delays[k] steps hold the initial token. A code of -1 (the zero token) embeds to an
exact zero and gets no loss.

Parameter names follow Kyutai's checkpoints (``emb.k``, ``text_emb``, ``transformer.layers…``,
``out_norm``, ``text_linear``, ``depformer_in.k``, ``depformer_emb.k``, ``depformer_text_emb``,
``depformer.layers…``, ``linears.k``), so their safetensors load unchanged.

With ``user_text_delay`` = D > 0 the model also has ``user_text_proj``: the temporal output at step
t + D (of layer ``user_text_layer``, normalised by ``out_norm``; by default the last), projected and
read through ``text_linear``, predicts the user's word token of frame t (the user's words in the
text-stream layout, from `data tokenize`). Trained as an auxiliary loss it makes the temporal
transformer transcribe what the user says, D frames late; generation does not use it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import StreamingContainer, StreamingTransformer, make_norm
from .config import LMConfig


@dataclass
class LMOutput:
    """Logits aligned with the input codes (no extra shift needed for the loss).

    logits [B, dep_q, T, card], mask [B, dep_q, T], text_logits [B, 1, T, text_card] (None if textless),
    text_mask [B, 1, T]. Invalid positions hold NaN logits and a False mask.
    """

    logits: torch.Tensor
    mask: torch.Tensor
    text_logits: torch.Tensor | None
    text_mask: torch.Tensor | None
    hidden: torch.Tensor | None = None  # [B, T, dim]: what the user transcript head reads (step t has read
                                        # the frames before t); None without the head


class StreamEmbedding(nn.Embedding):
    """Embedding where the zero token (-1) gives an exact zero; optional low-rank factorisation.

    tokens [...] -> [..., dim]. With ``low_rank=r`` the table is [num, r] followed by a linear r -> dim.
    """

    def __init__(self, num_embeddings: int, dim: int, low_rank: int | None = None):
        super().__init__(num_embeddings, low_rank or dim)
        self.low_rank = nn.Linear(low_rank, dim, bias=False) if low_rank else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y = super().forward(tokens.clamp(min=0))
        y = y.masked_fill((tokens < 0).unsqueeze(-1), 0.0)
        if self.low_rank is not None:
            y = self.low_rank(y)
        return y


def sin_embedding(positions: torch.Tensor, dim: int, max_period: float) -> torch.Tensor:
    """Sinusoidal positions [..., T] -> [..., T, dim]: [cos(p * w_i), sin(p * w_i)], w_i = P^(-i / (dim/2 - 1))."""
    half = dim // 2
    i = torch.arange(half, device=positions.device, dtype=torch.float32)
    phase = positions.float().unsqueeze(-1) / (max_period ** (i / (half - 1)))
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def _nn_positional(kind: str) -> str:
    """The nn transformer's part of a Kyutai positional scheme (the 'sin' part is added here)."""
    return {"sin": "none", "sin_rope": "rope", "rope": "rope", "rope_concat": "rope_concat", "none": "none"}[kind]


def delay_streams(codes: torch.Tensor, delays: list[int], fill: torch.Tensor) -> torch.Tensor:
    """Shift row k of codes [B, K, T] right by delays[k]; the first delays[k] steps get fill[:, k] ([1|B, K])."""
    B, K, T = codes.shape
    out = codes.clone()
    for k, d in enumerate(delays):
        if d > 0:
            out[:, k, d:] = codes[:, k, : T - d]
            out[:, k, :d] = fill[:, k, None]
    return out


def undelay_streams(x: torch.Tensor, delays: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`delay_streams` on x [B, K, T, ...]: shift row k left by delays[k].

    Returns (x', mask [B, K, T]); the last delays[k] steps of row k are NaN and masked out.
    """
    B, K, T = x.shape[:3]
    mask = torch.ones(B, K, T, dtype=torch.bool, device=x.device)
    if not any(delays):
        return x, mask
    out = x.clone()
    for k, d in enumerate(delays):
        if d > 0:
            out[:, k, : T - d] = x[:, k, d:]
            out[:, k, T - d:] = float("nan")
            mask[:, k, T - d:] = False
    return out, mask


class LMModel(StreamingContainer):
    """Temporal transformer + depth transformer over 1 text stream and n_q audio streams."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg
        # --- temporal side
        self.emb = nn.ModuleList([StreamEmbedding(c.card + 1, c.dim) for _ in range(c.n_q)])
        self.text_emb = None if c.textless else StreamEmbedding(c.text_card + 1, c.dim)
        self.transformer = StreamingTransformer(
            d_model=c.dim, num_heads=c.num_heads, num_layers=c.num_layers, dim_feedforward=c.dim_feedforward,
            causal=c.causal, context=c.context, positional_embedding=_nn_positional(c.positional_embedding),
            max_period=c.max_period, norm=c.norm, layer_scale=c.layer_scale, gating=c.gating,
            kv_repeat=c.kv_repeat)
        self.out_norm = make_norm(c.norm, c.dim)
        self.text_linear = None if c.textless else nn.Linear(c.dim, c.text_card, bias=False)
        self.user_text_proj = nn.Linear(c.dim, c.dim, bias=False) if c.user_text_delay > 0 else None
        # --- depth side
        n_in = 1
        if c.depformer_multi_linear:
            sched = c.depformer_weights_per_step_schedule
            n_in = max(sched) + 1 if sched else c.dep_q
        self.depformer_in = nn.ModuleList([nn.Linear(c.dim, c.depformer_dim, bias=False) for _ in range(n_in)])
        low_rank = c.depformer_low_rank_embeddings
        self.depformer_emb = nn.ModuleList(
            [StreamEmbedding(c.card + 1, c.depformer_dim, low_rank) for _ in range(max(c.dep_q - 1, 0))])
        self.depformer_text_emb = None
        if not c.textless and c.dep_q > 0:
            self.depformer_text_emb = StreamEmbedding(c.text_card + 1, c.depformer_dim, low_rank)
        self.depformer_norms = nn.ModuleList([
            nn.Identity() if c.depformer_norm is None else make_norm(c.depformer_norm, c.depformer_dim)
            for _ in range(c.dep_q)])
        self.depformer = None
        if c.dep_q > 0:
            self.depformer = StreamingTransformer(
                d_model=c.depformer_dim, num_heads=c.depformer_num_heads, num_layers=c.depformer_num_layers,
                dim_feedforward=c.depformer_ff, causal=c.causal, context=None,
                positional_embedding=_nn_positional(c.depformer_pos_emb), max_period=c.depformer_max_period,
                norm=c.norm, layer_scale=c.depformer_layer_scale, gating=c.depformer_gating,
                kv_repeat=c.depformer_kv_repeat,
                weights_per_step=c.dep_q if c.depformer_weights_per_step else 0,
                weights_per_step_schedule=c.depformer_weights_per_step_schedule)
            # The depformer runs its own short sequence inside each frame, not along time.
            self.depformer.set_streaming_detached(True)
        self.linears = nn.ModuleList([nn.Linear(c.depformer_dim, c.card, bias=False) for _ in range(c.dep_q)])
        if not any(p.is_meta for p in self.parameters()):
            self.init_weights()

    @torch.no_grad()
    def init_weights(self, skip_temporal: bool = False) -> None:
        """Truncated normal, std 1/sqrt(fan_in), for every matrix and embedding; norms and scales to their
        defaults. ``skip_temporal`` leaves the text backbone (text_emb, transformer, out_norm,
        text_linear) as it is, for a model whose backbone comes from a pretrained text LM."""
        backbone = ("text_emb.", "transformer.", "out_norm.", "text_linear.")
        for name, p in self.named_parameters():
            if skip_temporal and name.startswith(backbone):
                continue
            if _init_identity(name, p):
                continue
            if name.endswith(".alpha"):
                p.fill_(1.0)
            elif name.endswith(".scale"):  # layer scale
                p.fill_(self.cfg.layer_scale if name.startswith("transformer.") else self.cfg.depformer_layer_scale)
            elif name.endswith(".bias"):
                p.zero_()
            elif p.dim() == 1 and name.endswith(".weight"):  # LayerNorm gain
                p.fill_(1.0)
            elif p.dim() == 2:
                std = 1 / math.sqrt(p.shape[1])
                nn.init.trunc_normal_(p, std=std, a=-3 * std, b=3 * std)
            else:
                raise RuntimeError(f"no initialisation rule for parameter {name}")

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.out_norm.alpha.dtype if hasattr(self.out_norm, "alpha") else self.out_norm.weight.dtype

    def initial_tokens(self) -> torch.Tensor:
        """long [1, K, 1]: the token every stream reads before its first code."""
        c = self.cfg
        t = torch.full((1, c.num_codebooks, 1), c.initial_token_id, dtype=torch.long, device=self.device)
        if not c.textless:
            t[:, 0] = c.text_initial_token_id
        return t

    def check_codes(self, codes: torch.Tensor, rows: int, first_row: int = 0, what: str = "codes") -> None:
        """Raise a clear error unless codes [B, rows, T] are longs in range (-1 allowed = zero token)."""
        c = self.cfg
        if codes.dim() != 3 or codes.shape[1] != rows:
            raise ValueError(f"{what} must be [B, {rows}, T], got shape {tuple(codes.shape)}")
        if codes.dtype not in (torch.long, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise TypeError(f"{what} must be an integer tensor, got {codes.dtype}")
        for r in range(rows):
            k = first_row + r
            hi = c.text_card if (k == 0 and not c.textless) else c.card
            row = codes[:, r]
            if row.numel() and (bool((row < -1).any()) or bool((row >= hi).any())):
                bad = row[(row < -1) | (row >= hi)][0].item()
                raise ValueError(f"{what}: stream {k} holds {bad}, outside [0, {hi}) (or -1 = no token)")

    # ------------------------------------------------------------------ temporal transformer
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, T] (delayed layout) -> summed embeddings [B, T, dim]."""
        a = self.cfg.audio_offset
        x = None
        for k in range(self.cfg.n_q):
            e = self.emb[k](tokens[:, a + k])
            x = e if x is None else x + e
        if self.text_emb is not None:
            e = self.text_emb(tokens[:, 0])
            x = e if x is None else x + e
        return x

    def forward_temporal(self, tokens: torch.Tensor, positions: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens [B, K, T] -> (hidden [B, T, dim] after out_norm, text_logits [B, 1, T, text_card] | None).

        ``positions`` [B, T] are needed for 'sin' positional embeddings while streaming.
        """
        x = self.embed(tokens)
        if self.cfg.positional_embedding in ("sin", "sin_rope"):
            if positions is None:
                positions = torch.arange(x.shape[1], device=x.device)[None]
            x = x + sin_embedding(positions, self.cfg.dim, self.cfg.max_period).to(x.dtype)
        h = self.out_norm(self.transformer(x))
        text_logits = None if self.text_linear is None else self.text_linear(h)[:, None]
        return h, text_logits

    # ------------------------------------------------------------------ depth transformer
    def depformer_in_index(self, cb: int) -> int:
        if len(self.depformer_in) == 1:
            return 0
        sched = self.cfg.depformer_weights_per_step_schedule
        return sched[cb] if sched else cb

    def depformer_token_input(self, cb: int, prev: torch.Tensor) -> torch.Tensor | None:
        """Embedding of the token before codebook cb (text token for cb 0) [...] -> [..., depformer_dim]."""
        if cb == 0:
            return None if self.depformer_text_emb is None else self.depformer_text_emb(prev)
        return self.depformer_emb[cb - 1](prev)

    def forward_depformer_training(self, targets: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """targets [B, K, T] (delayed layout, step t's own codes), h [B, T, dim] -> logits [B, dep_q, T, card]."""
        c = self.cfg
        B, _, T = targets.shape
        if c.dep_q == 0:
            return h.new_zeros(B, 0, T, c.card)
        inputs = []
        for cb in range(c.dep_q):
            x = self.depformer_in[self.depformer_in_index(cb)](h)
            prev_row = 0 if cb == 0 else c.audio_offset + cb - 1
            tok = self.depformer_token_input(cb, targets[:, prev_row]) if (cb > 0 or not c.textless) else None
            inputs.append(x if tok is None else x + tok)
        x = torch.stack(inputs, dim=2).view(B * T, c.dep_q, -1)
        if c.depformer_pos_emb in ("sin", "sin_rope"):
            x = x + sin_embedding(torch.arange(c.dep_q, device=x.device), c.depformer_dim,
                                  c.depformer_max_period).to(x.dtype)
        y = self.depformer(x)
        logits = [self.linears[cb](self.depformer_norms[cb](y[:, cb])).view(B, T, -1) for cb in range(c.dep_q)]
        return torch.stack(logits, dim=1)

    # ------------------------------------------------------------------ training forward
    def forward(self, codes: torch.Tensor) -> LMOutput:
        """Teacher forcing: codes [B, K, T] (row 0 text unless textless, then n_q audio rows) -> LMOutput."""
        c = self.cfg
        self.check_codes(codes, c.num_codebooks)
        codes = codes.long()
        B, K, T = codes.shape
        initial = self.initial_tokens()
        delayed = torch.cat([initial.expand(B, -1, -1), delay_streams(codes, c.delays, initial[:, :, 0])], dim=2)
        heard = {}
        hook = None
        if self.user_text_proj is not None and c.user_text_layer is not None:
            hook = self.transformer.layers[c.user_text_layer].register_forward_hook(
                lambda _m, _i, out: heard.__setitem__("h", out))
        try:
            h, text_logits = self.forward_temporal(delayed[:, :, :-1])
        finally:
            if hook is not None:
                hook.remove()
        a = c.audio_offset
        logits = self.forward_depformer_training(delayed[:, :, 1:], h)
        logits, mask = undelay_streams(logits, c.delays[a:a + c.dep_q])
        mask &= codes[:, a:a + c.dep_q] != c.zero_token_id
        text_mask = None
        if text_logits is not None:
            text_logits, text_mask = undelay_streams(text_logits, c.delays[:1])
            text_mask &= codes[:, :1] != c.zero_token_id
        hidden = None
        if self.user_text_proj is not None:
            hidden = self.out_norm(heard["h"]) if "h" in heard else h
        return LMOutput(logits, mask, text_logits, text_mask, hidden=hidden)

    @torch.no_grad()
    def add_user_text_head(self, delay: int, layer: int | None = None) -> None:
        """Give a model trained without one a user transcript head, reading temporal layer ``layer``
        (None: the last) ``delay`` frames late; it starts as the identity, so the model's own outputs
        are unchanged until it trains."""
        if self.user_text_proj is not None:
            raise ValueError("this LM already has a user transcript head")
        if delay <= 0:
            raise ValueError(f"user_text_delay={delay}: give the head's delay in frames, > 0")
        cfg = dataclasses.replace(self.cfg, user_text_delay=delay, user_text_layer=layer)
        cfg.validate()
        like = self.depformer_in[0].weight  # outside the text backbone, as the head is
        self.user_text_proj = nn.Linear(cfg.dim, cfg.dim, bias=False, device=like.device, dtype=like.dtype)
        _init_identity("user_text_proj.weight", self.user_text_proj.weight)
        self.cfg = cfg

    def user_words(self, user_text: torch.Tensor, T: int) -> torch.Tensor:
        """The user's text stream [B, 1, >= T - D] -> bool [B, T - D]: the frames t < T - D whose token is a word
        (not PAD, EPAD or the zero token): the transcript head's targets in a window of T steps."""
        c = self.cfg
        u = user_text[:, 0, :max(T - c.user_text_delay, 0)]
        return (u != c.zero_token_id) & (u != c.existing_text_padding_id) & (u != c.existing_text_end_padding_id)

    def user_text_logits(self, hidden: torch.Tensor, user_text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The transcript head on the user's words: hidden [B, T, dim], the user's text stream [B, 1, T] ->
        (logits [N, text_card], targets [N]) for the N frames of ``user_words``, frame t read from the
        temporal output at step t + D."""
        if self.user_text_proj is None:
            raise ValueError("this LM has no user transcript head (set user_text_delay > 0 in its config)")
        words = self.user_words(user_text, hidden.shape[1])
        h = hidden[:, self.cfg.user_text_delay:][words]
        return self.text_linear(self.user_text_proj(h)), user_text[:, 0, :words.shape[1]][words].long()


def _init_identity(name: str, p: torch.Tensor) -> bool:
    """The user transcript head starts as the identity ("the user says what the model would"); True if p is it."""
    if not name.startswith("user_text_proj."):
        return False
    p.copy_(torch.eye(p.shape[0], dtype=p.dtype))
    return True


def random_lm(cfg: LMConfig, seed: int = 0) -> LMModel:
    """An untrained LM with N(0, 0.02) weights and unit norm scales, for benchmarks and tests.

    Built on the meta device and filled in place, which is much faster than the default
    initialisation for large configs.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = LMModel(cfg)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if _init_identity(name, p):
                continue
            if name.endswith(".alpha"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
    return model.eval()
