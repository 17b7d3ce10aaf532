"""Teacher-forced loss of an LM checkpoint on `data tokenize` shards: a validation loss.

Every window of the shards is scored once, in shard order, with the training objective's weighting
(lm/loss.py: PAD/EPAD text targets x ``text_padding_weight``, the semantic codebook x
``first_codebook_weight``), so the numbers compare with a run's training loss on the same weights.
Scoring shards the model never trained on (another seed of `data synth`, or a held-out part of a
dataset) tells learning from memorising.

``words`` is the text loss on the words alone (targets other than PAD and EPAD). With ``listening``
every window is scored a second time with the user's codebooks taken from another window (the one
half the scored windows further on), and ``listening`` reports how much each loss rises: how much
the model's words and speech depend on what this user said and when. A model that ignores the
user's stream scores 0.

A model with a user transcript head, scored on shards with ``user_text``, also reports
``user_words``: its loss transcribing the user's words (PAD and EPAD left out).
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
                progress: bool = True, listening: bool = False) -> dict:
    """{"loss", "text", "audio", "words", "windows", ...}: means over the windows (each batch weighted by
    its size); with ``listening`` also "mismatched" (the same losses with another window's user) and
    "listening" (mismatched minus matched)."""
    model, _ = load_checkpoint(checkpoint)
    data = ShardWindows(shards, batch_size, seed=0)
    k = data.window(0).shape[0]
    heard = data.user_text = model.user_text_proj is not None and data.has_user_text()
    if k != 1 + model.cfg.n_q:
        raise ValueError(f"{shards}: the shards hold {k} streams per window, the LM reads {1 + model.cfg.n_q} "
                         "(text + both channels' codebooks): tokenize with the LM's codec")
    n = len(data) if windows is None else max(1, min(windows, len(data)))
    if listening and n < 2:
        raise ValueError("listening swaps the user's stream between windows: score at least 2 windows")
    user = model.cfg.audio_offset + model.cfg.dep_q  # first row of the user's codebooks
    sums = {"loss": 0.0, "text": 0.0, "audio": 0.0, "words": 0.0, **({"user_words": 0.0} if heard else {})}
    swapped = dict.fromkeys(sums, 0.0)
    for start in tqdm(range(0, n, batch_size), desc="eval-lm", unit="batch", disable=not progress):
        idx = range(start, min(start + batch_size, n))
        codes = torch.stack([data.window(i) for i in idx]).long()
        _accumulate(sums, model, codes, len(idx), text_padding_weight, first_codebook_weight)
        if listening:
            other = torch.stack([data.window((i + n // 2) % n) for i in idx]).long()
            codes[:, user:1 + model.cfg.n_q] = other[:, user:1 + model.cfg.n_q]
            _accumulate(swapped, model, codes, len(idx), text_padding_weight, first_codebook_weight)
    res = {"checkpoint": str(checkpoint), "shards": str(shards), "windows": n,
           "frames_per_window": int(data.window(0).shape[-1]),
           **{key: round(v / n, 4) for key, v in sums.items()},
           "text_padding_weight": text_padding_weight, "first_codebook_weight": first_codebook_weight}
    if listening:
        res["mismatched"] = {key: round(v / n, 4) for key, v in swapped.items()}
        res["listening"] = {key: round((swapped[key] - sums[key]) / n, 4) for key in sums}
    return res


def _accumulate(sums: dict, model, codes: torch.Tensor, weight: int, text_padding_weight: float,
                first_codebook_weight: float) -> None:
    """Add ``weight`` x this batch's losses to ``sums`` (words: the text loss without PAD/EPAD targets;
    with "user_words" in ``sums``, the last row of ``codes`` is the user's text)."""
    user_text = None
    if "user_words" in sums:
        codes, user_text = codes[:, :-1], codes[:, -1:]
    out = model(codes)
    res = lm_loss(model, codes, out, text_padding_weight, first_codebook_weight)
    bare = lm_loss(model, codes, out, 0.0, first_codebook_weight, user_text)
    for key, v in (("loss", res.total), ("text", res.text), ("audio", res.audio), ("words", bare.text),
                   ("user_words", bare.user_text)):
        if v is not None:
            sums[key] += float(v) * weight
