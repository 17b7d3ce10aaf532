"""The training loss of the multistream LM, as Kyutai's fine-tuning computes it.

Cross-entropy over the valid positions only (the masks of :class:`LMOutput`), each position
weighted: text targets equal to PAD or EPAD by ``text_padding_weight``, the first (semantic) audio
codebook by ``first_codebook_weight``; each part is normalised by the sum of its weights. The total
is text loss + audio loss. The user's audio streams get no loss.
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


def lm_loss(model: LMModel, codes: torch.Tensor, out: LMOutput, text_padding_weight: float = 0.5,
            first_codebook_weight: float = 1.0) -> LMLoss:
    """Loss of ``out = model(codes)`` for codes [B, K, T]."""
    c = model.cfg
    a = c.audio_offset
    audio_t = codes[:, a:a + c.dep_q].long()
    w = out.mask.float()
    w[:, 0] *= first_codebook_weight
    audio = weighted_cross_entropy(out.logits, audio_t, w)
    text = None
    if out.text_logits is not None:
        text_t = codes[:, :1].long()
        wt = out.text_mask.float()
        is_pad = (text_t == c.existing_text_padding_id) | (text_t == c.existing_text_end_padding_id)
        wt = torch.where(is_pad & out.text_mask, wt * text_padding_weight, wt)
        text = weighted_cross_entropy(out.text_logits, text_t, wt)
    total = audio if text is None else text + audio
    return LMLoss(total, text, audio)
