"""Teacher-forced loss of an LM checkpoint on `data tokenize` shards: a validation loss.

Every window of the shards is scored once, in shard order, with the training objective's weighting
(lm/loss.py: PAD/EPAD text targets x ``text_padding_weight``, the semantic codebook x
``first_codebook_weight``), so the numbers compare with a run's training loss on the same weights.
Scoring shards the model never trained on (another seed of `data synth`, or a held-out part of a
dataset) tells learning from memorising.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from ..lm.loading import load_checkpoint
from ..lm.loss import lm_loss
from .lm_data import ShardWindows


@torch.no_grad()
def evaluate_lm(checkpoint, shards, batch_size: int = 4, windows: int | None = None,
                text_padding_weight: float = 0.5, first_codebook_weight: float = 100.0,
                progress: bool = True) -> dict:
    """{"loss", "text", "audio", "windows", ...}: means over the windows (each batch weighted by its size)."""
    model, _ = load_checkpoint(checkpoint)
    data = ShardWindows(shards, batch_size, seed=0)
    k = data.window(0).shape[0]
    if k != 1 + model.cfg.n_q:
        raise ValueError(f"{shards}: the shards hold {k} streams per window, the LM reads {1 + model.cfg.n_q} "
                         "(text + both channels' codebooks): tokenize with the LM's codec")
    n = len(data) if windows is None else max(1, min(windows, len(data)))
    sums = {"loss": 0.0, "text": 0.0, "audio": 0.0}
    for start in tqdm(range(0, n, batch_size), desc="eval-lm", unit="batch", disable=not progress):
        idx = range(start, min(start + batch_size, n))
        codes = torch.stack([data.window(i) for i in idx]).long()
        res = lm_loss(model, codes, model(codes), text_padding_weight, first_codebook_weight)
        for key, v in (("loss", res.total), ("text", res.text), ("audio", res.audio)):
            if v is not None:
                sums[key] += float(v) * len(idx)
    return {"checkpoint": str(checkpoint), "shards": str(shards), "windows": n,
            "frames_per_window": int(data.window(0).shape[-1]),
            **{key: round(v / n, 4) for key, v in sums.items()},
            "text_padding_weight": text_padding_weight, "first_codebook_weight": first_codebook_weight}
