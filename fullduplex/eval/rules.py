"""Full-Duplex-Bench v1's clip-level rules, re-implemented from their definitions
(evaluation.md §1.3): the takeover rule, the backchannel rule, and its latency conventions."""

from __future__ import annotations


def fdb_takeover(words: list) -> int:
    """TO = 0 without words, or when the word span < 1 s and there are <= 3 words; else 1."""
    if not words:
        return 0
    span = words[-1][2] - words[0][1]
    return 0 if (span < 1.0 and len(words) <= 3) else 1


def fdb_latency(words: list, t_ref: float) -> float | None:
    """Start of the first word minus the reference time, clipped at 0 (None without words)."""
    return round(max(0.0, words[0][1] - t_ref), 3) if words else None


def fdb_backchannel(segments: list, words: list) -> tuple[int, int]:
    """(TO, number of backchannel segments) over raw VAD segments: a segment > 3 s is a takeover
    and ends the scan; every other segment is appended to the backchannel list, and the clip's TO
    is overwritten by each (> 3 words, or not (< 1 s and <= 2 words) -> 1)."""
    to, n_bc = 0, 0
    for s, e in segments:
        if e - s > 3.0:
            return 1, n_bc
        ws = [w for w in words if w[2] > s and w[1] < e]
        if len(ws) > 3:
            to = 1
        else:
            to = 0 if (e - s < 1.0 and len(ws) <= 2) else 1
        n_bc += 1
    return to, n_bc
