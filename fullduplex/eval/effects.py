"""Acoustic effects for overlapping speech (evaluation.md §1.4 / §9.2): side talk, background speech,
babble noise. All work on mono float32 audio at 16 kHz."""

from __future__ import annotations

import numpy as np
from scipy import signal

SR = 16_000


def db(x: float) -> float:
    return float(10 ** (x / 20))


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-12))


def _echoes(x: np.ndarray, taps: list[tuple[float, float]]) -> np.ndarray:
    """x plus delayed copies: taps = [(delay_s, gain_db)]."""
    n_max = int(max(d for d, _ in taps) * SR)
    y = np.concatenate([x, np.zeros(n_max, np.float32)])
    for d, g in taps:
        k = int(d * SR)
        y[k:k + len(x)] += db(g) * x
    return y.astype(np.float32)


def _high_shelf(x: np.ndarray, f0: float, gain_db: float) -> np.ndarray:
    """First-order high shelf: the band above f0 scaled by gain_db."""
    b, a = signal.butter(2, f0 / (SR / 2), btype="high")
    hi = signal.lfilter(b, a, x)
    return (x + (db(gain_db) - 1.0) * hi).astype(np.float32)


def side_talk(x: np.ndarray) -> np.ndarray:
    """The user turning away to talk to someone else: -8 dB, high shelf -5 dB above 4 kHz,
    reflections at 45 ms (-6 dB) and 120 ms (-12 dB)."""
    y = _high_shelf(x, 4000.0, -5.0)
    y = _echoes(y, [(0.045, -6.0), (0.120, -12.0)])
    return (db(-8.0) * y).astype(np.float32)


def background_speech(x: np.ndarray) -> np.ndarray:
    """Another person talking in the room: -15 dB, 3 kHz low-pass, 100 ms echo at -10 dB."""
    b, a = signal.butter(4, 3000.0 / (SR / 2), btype="low")
    y = signal.lfilter(b, a, x).astype(np.float32)
    y = _echoes(y, [(0.100, -10.0)])
    return (db(-15.0) * y).astype(np.float32)


def babble(clips: list[np.ndarray], length: int, level_dbfs: float, rng) -> np.ndarray:
    """Cafe-like babble: time-reversed speech clips (unintelligible) looped at random offsets and
    summed, scaled to ``level_dbfs`` RMS."""
    out = np.zeros(length, np.float32)
    for c in clips:
        rev = np.asarray(c[::-1], np.float32)
        reps = int(np.ceil((length + len(rev)) / len(rev)))
        loop = np.tile(rev, reps)
        off = int(rng.integers(0, len(rev)))
        out += loop[off:off + length]
    return (out * db(level_dbfs - rms_db(out))).astype(np.float32)
