"""The training loss of the multistream LM, as Kyutai's fine-tuning computes it.

Cross-entropy over the valid positions only (the masks of :class:`LMOutput`), each position
weighted: text targets equal to PAD or EPAD by ``text_padding_weight``, the first (semantic) audio
codebook by ``first_codebook_weight``; each part is normalised by the sum of its weights. The total
is text loss + audio loss. The user's audio streams get no loss. Per-frame ``text_frame_weights``
[B, 1, T] scale the text positions further (training weights the frames where the user hesitates).

A model with a user transcript head (``user_text_delay`` > 0) given the user's text stream
[B, 1, T] adds ``user_text_weight`` x its mean cross-entropy on the user's words (PAD and EPAD left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .model import LMModel, LMOutput


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """logits [..., V], targets [...] (any value where weight is 0), weights [...] -> weighted mean CE."""
    valid = weights > 0
    targets = torch.where(valid, targets, torch.zeros_like(targets))
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none")
    w = weights.reshape(-1)
    ce = torch.where(valid.reshape(-1), ce * w, torch.zeros_like(ce))  # NaN logits at masked positions stay out
    return ce.sum() / w.sum().clamp(min=torch.finfo(w.dtype).tiny)


@dataclass
class LMLoss:
    total: torch.Tensor
    text: torch.Tensor | None
    audio: torch.Tensor
    user_text: torch.Tensor | None = None


def text_weights(targets: torch.Tensor, mask: torch.Tensor, cfg, text_padding_weight: float,
                 frame_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-position weights of a text stream's loss: 1 for words, ``text_padding_weight`` for PAD/EPAD,
    0 where ``mask`` is False or the target is the zero token; times ``frame_weights`` if given."""
    w = (mask & (targets != cfg.zero_token_id)).float()
    is_pad = (targets == cfg.existing_text_padding_id) | (targets == cfg.existing_text_end_padding_id)
    w = torch.where(is_pad, w * text_padding_weight, w)
    return w if frame_weights is None else w * frame_weights


def lm_loss(model: LMModel, codes: torch.Tensor, out: LMOutput, text_padding_weight: float = 0.5,
            first_codebook_weight: float = 1.0, user_text: torch.Tensor | None = None,
            user_text_weight: float = 1.0, text_frame_weights: torch.Tensor | None = None) -> LMLoss:
    """Loss of ``out = model(codes)`` for codes [B, K, T] (and the user's text stream [B, 1, T])."""
    c = model.cfg
    a = c.audio_offset
    audio_t = codes[:, a:a + c.dep_q].long()
    w = out.mask.float()
    w[:, 0] *= first_codebook_weight
    audio = weighted_cross_entropy(out.logits, audio_t, w)
    text = None
    if out.text_logits is not None:
        text_t = codes[:, :1].long()
        text = weighted_cross_entropy(out.text_logits, text_t,
                                      text_weights(text_t, out.text_mask, c, text_padding_weight, text_frame_weights))
    total = audio if text is None else text + audio
    user = None
    if user_text is not None:
        logits, targets = model.user_text_logits(out.hidden, user_text)
        user = F.cross_entropy(logits.float(), targets) if len(targets) else logits.sum() * 0.0
        total = total + user_text_weight * user
    return LMLoss(total, text, audio, user)
