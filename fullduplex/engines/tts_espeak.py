"""espeak-ng voices (formant variants, and mbrola diphone voices when mbrola is installed).

espeak-ng's command line gives no word times, so the caller aligns the known text (pocketsphinx).
"""

from __future__ import annotations

import os
import tempfile

from .base import require_binary, run

INSTALL = "apt-get install espeak-ng (mbrola voices: apt-get install mbrola mbrola-us1 mbrola-us2 mbrola-us3, from contrib/non-free)"


def synthesize(text: str, voice: str, rate: float, pitch: float):
    """Returns (audio float32 [T], sample_rate, None). ``voice`` is an espeak-ng voice (e.g. en-us+f3)."""
    exe = require_binary("espeak-ng", INSTALL)
    if voice.startswith("mb-") and not os.path.isdir(f"/usr/share/mbrola/{voice[3:]}"):
        raise RuntimeError(f"mbrola voice {voice[3:]} is not installed; {INSTALL}")
    import soundfile as sf

    fd, wav = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        run([exe, "-v", voice, "-s", str(int(round(165 * rate))), "-p", str(int(min(99, max(0, 50 * pitch)))),
             "-w", wav, text])
        x, sr = sf.read(wav, dtype="float32")
    finally:
        os.unlink(wav)
    return x, int(sr), None
