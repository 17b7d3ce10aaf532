"""Per-session sampling settings from the query of ``/api/chat``, under the names Moshi's clients use.

    text_temperature  -> temp_text     a number in [0, 10]; 0 = greedy
    text_topk         -> top_k_text    an integer in [0, text vocabulary]; 0 = no limit
    audio_temperature -> temp          a number in [0, 10]; 0 = greedy
    audio_topk        -> top_k         an integer in [0, audio codebook size]; 0 = no limit
    padding_bonus     -> padding_bonus a number in [-10, 10] added to the text PAD logit; 0 = off
                                       (Kyutai's name for it in its TTS; not sent by Moshi's client)
    onset_temp_text     -> onset_temp_text      temp_text while the model is silent (empty: temp_text)
    onset_padding_bonus -> onset_padding_bonus  padding_bonus while the model is silent

An empty value counts as not given (the server's setting applies). Other parameters Moshi's clients
send (seeds, ``pad_mult``, repetition penalties) have no per-session meaning here and are ignored.
"""

from __future__ import annotations

import math
from typing import Mapping

from ..lm.generate import MAX_PADDING_BONUS

QUERY = {"text_temperature": "temp_text", "text_topk": "top_k_text",
         "audio_temperature": "temp", "audio_topk": "top_k", "padding_bonus": "padding_bonus",
         "onset_temp_text": "onset_temp_text", "onset_padding_bonus": "onset_padding_bonus"}
MAX_TEMPERATURE = 10.0
IGNORED = ("text_seed", "audio_seed", "seed", "pad_mult", "repetition_penalty", "repetition_penalty_context")


class BadParameter(ValueError):
    """A query parameter out of its range; the message names it and the range."""


def _number(name: str, raw: str, accepted: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise BadParameter(f"{name}={ascii(raw[:40])} is not a number: give {accepted}")
    return v


def parse_query(query: Mapping[str, str], limits: Mapping[str, int]) -> dict:
    """Moshi's query parameters -> sampling overrides (our keys); BadParameter for a bad value.

    ``limits`` gives each top-k's largest value (the vocabulary size of its stream).
    """
    out = {}
    for name, key in QUERY.items():
        raw = query.get(name)
        if raw is None or not raw.strip():
            continue
        raw = raw.strip()
        if "temp" in key:
            accepted = f"a temperature in [0, {MAX_TEMPERATURE:g}] (0 = greedy)"
            v = _number(name, raw, accepted)
            if not 0 <= v <= MAX_TEMPERATURE:
                raise BadParameter(f"{name}={ascii(raw[:40])} is out of range: give {accepted}")
            out[key] = v
        elif key.endswith("padding_bonus"):
            accepted = f"a number in [-{MAX_PADDING_BONUS:g}, {MAX_PADDING_BONUS:g}] (0 = off)"
            v = _number(name, raw, accepted)
            if abs(v) > MAX_PADDING_BONUS:
                raise BadParameter(f"{name}={ascii(raw[:40])} is out of range: give {accepted}")
            out[key] = v
        else:
            limit = limits.get(key)
            accepted = (f"an integer top-k in [0, {limit}]" if limit is not None else "an integer top-k >= 0") \
                + " (0 = no limit)"
            v = _number(name, raw, accepted)
            if not v.is_integer() or v < 0 or (limit is not None and v > limit):
                raise BadParameter(f"{name}={ascii(raw[:40])} is out of range: give {accepted}")
            out[key] = int(v)
    return out


def given(query: Mapping[str, str]) -> list[str]:
    """The sampling-related parameters present in the query (Moshi's names)."""
    return [n for n in (*QUERY, *IGNORED) if query.get(n, "").strip()]
