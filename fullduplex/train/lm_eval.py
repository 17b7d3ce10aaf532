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

On shards with ``user_text`` every model also reports ``echo_words``: its text loss (nats a token) on the
content words it says back from what the user said in the 8 s before, such as " capital" and " France"
in "The capital of France is Paris." after "What is the capital of France?" (lm/text.py
``echo_positions``; content words by the LM's tokenizer, every word token for an LM without one), and
``echo_tokens``, how many there were. These are the words a model can only say right by
hearing them; with ``listening`` their rise is the plainest measure of hearing the user's words.

On shards with floor labels (tokenize.py ``floor_labels``) ``floor`` reports the turn-taking the text
stream implies, from each frame's hazard h = 1 - P(PAD) under the text sampling of generation
(``padding_bonus`` added to the PAD logit, then ``temp_text`` and ``top_k_text``; the runtime's defaults
unless given): the chance that the model starts a word there.

  ``hesitation_taken``  mean over the user's hesitations (a pause mid-sentence, after a lead-in) of
                     1 - prod(1 - h) over the pause's frames: the chance of taking the floor from a user who
                     has not finished (the suite's M4, teacher-forced);
  ``pause_taken``    the same over the user's other silent pauses, between the sentences of a turn (where a
                     start is one of the suite's M3 premature starts);
  ``reply_on_time``  mean over the user's turn ends of 1 - prod(1 - h) from the end of the turn to the frame
                     where the reference reply begins, inclusive: the chance of having answered by then;
  ``hesitation_hazard``, ``hold_hazard``, ``turn_end_hazard``  the mean h over those frames.

Spans that begin at a window's first frame (no context) or reach its end are left out.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from ..lm.generate import DEFAULT_SAMPLING, sampling_probs
from ..lm.loading import load_checkpoint
from ..lm.loss import lm_loss, weighted_cross_entropy
from ..lm.text import echo_positions, word_ids
from .lm_data import ShardWindows, split_rows
from .tokenize import HESITATE, HOLD, TAKE


@torch.no_grad()
def evaluate_lm(checkpoint, shards, batch_size: int = 4, windows: int | None = None,
                text_padding_weight: float = 0.5, first_codebook_weight: float = 100.0,
                progress: bool = True, listening: bool = False, temp_text: float = DEFAULT_SAMPLING["temp_text"],
                top_k_text: int = DEFAULT_SAMPLING["top_k_text"], padding_bonus: float = 0.0) -> dict:
    """{"loss", "text", "audio", "words", "windows", ...}: means over the windows (each batch weighted by
    its size); with ``listening`` also "mismatched" (the same losses with another window's user) and
    "listening" (mismatched minus matched)."""
    model, tokenizer = load_checkpoint(checkpoint)
    data = ShardWindows(shards, batch_size, seed=0)
    k = data.window(0).shape[0]
    data.user_text = data.has("user_text")
    heard = model.user_text_proj is not None and data.user_text
    content = word_ids(tokenizer, model.cfg) if data.user_text else None
    stale = data.has("floor") and data.stale_floor()
    data.floor = data.has("floor") and not stale
    if k != 1 + model.cfg.n_q:
        raise ValueError(f"{shards}: the shards hold {k} streams per window, the LM reads {1 + model.cfg.n_q} "
                         "(text + both channels' codebooks): tokenize with the LM's codec")
    n = len(data) if windows is None else max(1, min(windows, len(data)))
    if listening and n < 2:
        raise ValueError("listening swaps the user's stream between windows: score at least 2 windows")
    user = model.cfg.audio_offset + model.cfg.dep_q  # first row of the user's codebooks
    sums = {"loss": 0.0, "text": 0.0, "audio": 0.0, "words": 0.0, **({"user_words": 0.0} if heard else {})}
    swapped = dict.fromkeys(sums, 0.0)
    echo = {"tokens": 0, "matched": 0.0, "mismatched": 0.0}  # summed over the echoed tokens
    spans: dict[str, list[float]] = {k: [] for k in SPANS.values() for k in (k, k + "_h")}
    for start in tqdm(range(0, n, batch_size), desc="eval-lm", unit="batch", disable=not progress):
        idx = range(start, min(start + batch_size, n))
        codes, user_text, floor = split_rows(torch.stack([data.window(i) for i in idx]).long(), data.user_text,
                                             data.floor)
        head_text = user_text if heard else None
        out = _accumulate(sums, model, codes, head_text, len(idx), text_padding_weight, first_codebook_weight)
        said_back = None
        if content is not None and out.text_logits is not None:
            said_back = echo_positions(codes[:, :1], user_text, content) & out.text_mask
            echo["tokens"] += int(said_back.sum())
            echo["matched"] += _echo_loss(out, codes, said_back)
        if floor is not None and out.text_logits is not None:
            pad = model.cfg.existing_text_padding_id
            logits = out.text_logits[:, 0].float()
            logits[..., pad] += padding_bonus
            hazard = 1 - sampling_probs(logits, temp_text, top_k_text)[..., pad]
            for h, lab in zip(hazard, floor[:, 0]):
                floor_spans(h, lab, spans)
        if listening:
            other = torch.stack([data.window((i + n // 2) % n) for i in idx]).long()
            codes[:, user:1 + model.cfg.n_q] = other[:, user:1 + model.cfg.n_q]
            out = _accumulate(swapped, model, codes, head_text, len(idx), text_padding_weight, first_codebook_weight)
            if said_back is not None:
                echo["mismatched"] += _echo_loss(out, codes, said_back)
    res = {"checkpoint": str(checkpoint), "shards": str(shards), "windows": n,
           "frames_per_window": int(data.window(0).shape[-1]),
           **{key: round(v / n, 4) for key, v in sums.items()},
           "text_padding_weight": text_padding_weight, "first_codebook_weight": first_codebook_weight}
    if any(spans[k] for k in SPANS.values()):
        res["floor"] = {"hesitations": len(spans["hesitate"]), "hesitation_taken": _mean(spans["hesitate"]),
                        "hesitation_hazard": _mean(spans["hesitate_h"]),
                        "hold_pauses": len(spans["hold"]), "pause_taken": _mean(spans["hold"]),
                        "hold_hazard": _mean(spans["hold_h"]), "turn_ends": len(spans["take"]),
                        "reply_on_time": _mean(spans["take"]), "turn_end_hazard": _mean(spans["take_h"]),
                        "sampling": {"temp_text": temp_text, "top_k_text": top_k_text, "padding_bonus": padding_bonus}}
    if stale:
        res["floor"] = {"skipped": stale}
    if content is not None:
        res["echo_tokens"] = echo["tokens"]
        res["echo_words"] = round(echo["matched"] / echo["tokens"], 4) if echo["tokens"] else None
    if listening:
        res["mismatched"] = {key: round(v / n, 4) for key, v in swapped.items()}
        res["listening"] = {key: round((swapped[key] - sums[key]) / n, 4) for key in sums}
        if content is not None and echo["tokens"]:
            res["mismatched"]["echo_words"] = round(echo["mismatched"] / echo["tokens"], 4)
            res["listening"]["echo_words"] = round((echo["mismatched"] - echo["matched"]) / echo["tokens"], 4)
    return res


def _echo_loss(out, codes: torch.Tensor, where: torch.Tensor) -> float:
    """The summed text cross-entropy (nats) at the positions ``where`` [B, 1, T]."""
    n = int(where.sum())
    return float(weighted_cross_entropy(out.text_logits, codes[:, :1].long(), where.float())) * n if n else 0.0


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


SPANS = {HOLD: "hold", HESITATE: "hesitate", TAKE: "take"}  # floor label -> its key in ``spans``


def floor_spans(hazard: torch.Tensor, labels: torch.Tensor, spans: dict) -> None:
    """One window's hazard [T] and floor labels [T] -> append to ``spans`` each whole HOLD, HESITATE and
    TAKE span's chance of a start ("hold", "hesitate", "take") and their frames' h ("hold_h", ...)."""
    T = labels.shape[0]
    t = 0
    while t < T:
        lab, a = int(labels[t]), t
        while t < T and int(labels[t]) == lab:
            t += 1
        if lab not in SPANS or a == 0 or t >= T:
            continue
        key = SPANS[lab]
        spans[key].append(float(1 - torch.prod(1 - hazard[a:t].double())))
        spans[key + "_h"].extend(hazard[a:t].tolist())


def _accumulate(sums: dict, model, codes: torch.Tensor, user_text: torch.Tensor | None, weight: int,
                text_padding_weight: float, first_codebook_weight: float):
    """Add ``weight`` x this batch's losses to ``sums`` (words: the text loss without PAD/EPAD targets;
    user_words with the user's text [B, 1, T]); returns the model's output."""
    out = model(codes)
    res = lm_loss(model, codes, out, text_padding_weight, first_codebook_weight)
    bare = lm_loss(model, codes, out, 0.0, first_codebook_weight, user_text)
    for key, v in (("loss", res.total), ("text", res.text), ("audio", res.audio), ("words", bare.text),
                   ("user_words", bare.user_text)):
        if v is not None:
            sums[key] += float(v) * weight
    return out
