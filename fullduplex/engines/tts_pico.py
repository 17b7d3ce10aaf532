"""SVOX pico voices (en-US, en-GB); no word times, so the caller aligns the known text."""

from __future__ import annotations

import os
import tempfile

from .base import require_binary, run

INSTALL = "apt-get install libttspico-utils (Debian non-free section)"


def synthesize(text: str, lang: str, rate: float, pitch: float):
    """Returns (audio float32 [T], sample_rate, None)."""
    exe = require_binary("pico2wave", INSTALL)
    import soundfile as sf

    fd, wav = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    markup = f'<speed level="{int(100 * rate)}"><pitch level="{int(100 * pitch)}">{text}</pitch></speed>'
    try:
        run([exe, "-l", lang, "-w", wav, markup])
        x, sr = sf.read(wav, dtype="float32")
    finally:
        os.unlink(wav)
    return x, int(sr), None
