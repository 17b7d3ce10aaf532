"""Scenarios for the cascade tests: user speech made with the project's TTS, scripted LLMs."""
from __future__ import annotations

import time

import numpy as np

SR, FRAME = 24_000, 1_920


def speech(text: str, voice: str = "flite-rms") -> np.ndarray:
    from fullduplex.audio import resample
    from fullduplex.engines import tts

    x, sr, _ = tts.synthesize(text, voice)
    return resample(x, sr, SR).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def run(system, audio: np.ndarray, until=None):
    """Step the system over audio; returns the frames. ``until(frames)`` may stop early."""
    frames = []
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        frames.append(system.step(audio[i:i + FRAME]))
        if until is not None and until(frames):
            break
    return frames


def events(frames) -> list[tuple[float, dict]]:
    """(clock time at the end of the frame, event) for every event, in order."""
    return [((i + 1) * FRAME / SR, e) for i, f in enumerate(frames) for e in f.info.get("events", [])]


def loud(frames) -> np.ndarray:
    """Whether each output frame holds audio."""
    return np.array([np.abs(f.audio).max() > 1e-4 for f in frames])


class ScriptedLLM:
    """Streams a fixed reply word by word (``delay`` s before the first word, ``gap`` s between)."""

    def __init__(self, reply: str, delay: float = 0.0, gap: float = 0.01):
        self.reply, self.delay, self.gap = reply, delay, gap
        self.calls: list[list[dict]] = []

    def stream(self, messages, max_tokens=64, cancelled=None):
        self.calls.append(messages)
        time.sleep(self.delay)
        for w in self.reply.split(" "):
            if cancelled is not None and cancelled():
                return
            time.sleep(self.gap)
            yield w + " "
