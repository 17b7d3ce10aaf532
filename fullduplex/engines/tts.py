"""Text-to-speech: a registry of English voices over flite, festival, espeak-ng/mbrola, pico and piper.

    audio, sr, words = synthesize("Hello there.", VOICES["flite-slt"], rate=1.2, pitch=1.1, gain_db=-6)

Every voice returns float32 mono audio with leading/trailing silence trimmed (20 ms kept), a
loudness normalised to -20 dBFS RMS before ``gain_db`` is applied, and word timings in seconds
relative to the returned audio: from the engine where it gives them (flite phone times, festival's
Word relation), otherwise from forced alignment of the known text (pocketsphinx).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import numpy as np

from . import align, tts_espeak, tts_festival, tts_flite, tts_pico, tts_piper
from .base import EngineNotInstalled, Word

REF_RMS_DB = -20.0


@dataclass(frozen=True)
class Voice:
    """One speaker. ``engine`` picks the adapter, ``id`` is the engine's own name for the voice,
    ``f0`` the speaker's typical pitch in Hz (used as the base of pitch control)."""

    name: str
    engine: str  # flite | festival | espeak | pico | piper
    id: str
    sex: str
    f0: float


VOICES: dict[str, Voice] = {v.name: v for v in [
    Voice("flite-slt", "flite", "slt", "F", 172),
    Voice("flite-rms", "flite", "rms", "M", 102),
    Voice("flite-awb", "flite", "awb", "M", 130),
    Voice("flite-kal16", "flite", "kal16", "M", 87),
    Voice("festival-kal", "festival", "voice_kal_diphone", "M", 103),
    Voice("festival-ked", "festival", "voice_ked_diphone", "M", 102),
    Voice("festival-slt-hts", "festival", "voice_cmu_us_slt_arctic_hts", "F", 171),
    Voice("espeak-en-us-f2", "espeak", "en-us+f2", "F", 200),
    Voice("espeak-en-scotland-f2", "espeak", "en-gb-scotland+f2", "F", 200),
    Voice("espeak-en-gb-rp-m3", "espeak", "en-gb-x-rp+m3", "M", 110),
    Voice("mbrola-us1", "espeak", "mb-us1", "F", 193),
    Voice("mbrola-us2", "espeak", "mb-us2", "M", 100),
    Voice("mbrola-us3", "espeak", "mb-us3", "M", 100),
    Voice("pico-en-us", "pico", "en-US", "F", 168),
    Voice("pico-en-gb", "pico", "en-GB", "F", 171),
    Voice("piper-joe", "piper", "joe", "M", 88),
]}

DEFAULT_ASSISTANT = "flite-slt"
# espeak-ng's formant voices give no word times and pocketsphinx often fails to align them, so
# dialogue synthesis draws users from the voices below (engine timings or reliable alignment).
DIALOGUE_USERS = ("flite-rms", "flite-awb", "flite-kal16", "festival-kal", "festival-ked",
                  "festival-slt-hts", "mbrola-us1", "mbrola-us2", "mbrola-us3", "pico-en-us", "pico-en-gb",
                  "espeak-en-us-f2")


def is_installed(voice: Voice) -> bool:
    """Whether this voice's engine (and, for mbrola, its voice data) is on this machine."""
    if voice.engine == "flite":
        return shutil.which("flite") is not None
    if voice.engine == "festival":
        return shutil.which("festival") is not None
    if voice.engine == "pico":
        return shutil.which("pico2wave") is not None
    if voice.engine == "piper":
        return tts_piper.is_installed(voice.id)
    if voice.id.startswith("mb-"):
        return shutil.which("espeak-ng") is not None and os.path.isdir(f"/usr/share/mbrola/{voice.id[3:]}")
    return shutil.which("espeak-ng") is not None


def available_voices() -> list[Voice]:
    return [v for v in VOICES.values() if is_installed(v)]


def get_voice(name: str) -> Voice:
    if name not in VOICES:
        raise KeyError(f"unknown voice {name!r}; known voices: {', '.join(VOICES)}")
    v = VOICES[name]
    if not is_installed(v):
        raise EngineNotInstalled(f"voice {name} needs the '{v.engine}' engine; run scripts/install.sh")
    return v


def _finish(x: np.ndarray, sr: int, ws: list[Word] | None, text: str, gain_db: float):
    """Trim silence, normalise loudness, apply gain, fill in word times by alignment if missing."""
    x = np.asarray(x, dtype=np.float32)
    if ws is None:
        ws = align.align(x, sr, text)
    hop = max(1, sr // 100)
    n = len(x) // hop
    env = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1) + 1e-12)
    loud = np.nonzero(20 * np.log10(env) > 20 * np.log10(env.max() + 1e-9) - 40)[0]
    pad = int(0.02 * sr)
    a = max(0, loud[0] * hop - pad) if len(loud) else 0
    b = min(len(x), (loud[-1] + 1) * hop + pad) if len(loud) else len(x)
    if ws:  # never cut into an aligned word
        a = min(a, int(ws[0].start * sr))
        b = max(b, min(len(x), int(np.ceil(ws[-1].end * sr))))
    x = x[a:b]
    rms = np.sqrt(np.mean(x ** 2) + 1e-12)
    x = x * (10 ** ((REF_RMS_DB + gain_db) / 20) / rms)
    ws = [Word(w.word, round(max(0.0, w.start - a / sr), 3), round(min(len(x) / sr, w.end - a / sr), 3)) for w in ws]
    return x.astype(np.float32), sr, ws


def synthesize_many(texts: list[str], voice: Voice | str, rate: float = 1.0, pitch: float = 1.0,
                    gain_db: float = 0.0) -> list[tuple[np.ndarray, int, list[Word]]]:
    """Synthesize several sentences with one voice and one prosody setting.

    Args:
        rate: speaking-rate factor (1.0 = the voice's default, 1.3 = 30 % faster).
        pitch: factor on the voice's typical F0 (festival's HTS voice, flite rms and piper ignore it).
        gain_db: loudness relative to -20 dBFS RMS.
    Returns:
        [(audio float32 [T], sample_rate, [Word])] per text.
    """
    v = get_voice(voice) if isinstance(voice, str) else voice
    if v.engine == "festival":
        raw = tts_festival.synthesize_many(texts, v.id, rate, pitch, v.f0)
    elif v.engine == "flite":
        raw = [tts_flite.synthesize(t, v.id, rate, pitch, v.f0) for t in texts]
    elif v.engine == "espeak":
        raw = [tts_espeak.synthesize(t, v.id, rate, pitch) for t in texts]
    elif v.engine == "pico":
        raw = [tts_pico.synthesize(t, v.id, rate, pitch) for t in texts]
    elif v.engine == "piper":
        raw = [tts_piper.synthesize(t, v.id, rate, pitch) for t in texts]
    else:
        raise ValueError(f"voice {v.name}: unknown engine {v.engine!r}")
    return [_finish(x, sr, ws, t, gain_db) for (x, sr, ws), t in zip(raw, texts)]


def synthesize(text: str, voice: Voice | str, rate: float = 1.0, pitch: float = 1.0, gain_db: float = 0.0):
    """One sentence: (audio float32 [T], sample_rate, [Word]); see :func:`synthesize_many`."""
    return synthesize_many([text], voice, rate, pitch, gain_db)[0]
