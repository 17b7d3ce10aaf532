"""Helpers for the eval tests: a silent track with snippets placed on it."""

import numpy as np

SR = 16_000


def have_voices() -> bool:
    from fullduplex.engines import tts

    return tts.is_installed(tts.VOICES["flite-slt"]) and tts.is_installed(tts.VOICES["flite-rms"])


def place(n: int, *parts) -> np.ndarray:
    """Sum of (start_s, audio) snippets on a silent track of n samples."""
    x = np.zeros(n, np.float32)
    for t, a in parts:
        i = int(round(t * SR))
        m = min(len(a), n - i)
        x[i:i + m] += a[:m]
    return x
