"""Forced alignment of a known transcript with pocketsphinx (bundled en-us model): word times."""

from __future__ import annotations


import numpy as np

from .base import Word, require_module
from .text import normalize, words

INSTALL = "pip install pocketsphinx"
_DECODER = None


def _decoder():
    global _DECODER
    if _DECODER is None:
        require_module("pocketsphinx", INSTALL)
        from pocketsphinx import Decoder

        _DECODER = Decoder(samprate=16000, loglevel="FATAL")
    return _DECODER


def align(audio: np.ndarray, sr: int, text: str) -> list[Word]:
    """Word start/end times (s) of ``text`` in mono float audio [T] at ``sr``.

    Words missing from the pronouncing dictionary are skipped by pocketsphinx; the result keeps the
    text's own spelling for every word it found, in order. Raises RuntimeError when alignment fails.
    """
    from fullduplex.audio import resample

    x = resample(np.asarray(audio, dtype=np.float32), sr, 16000) if sr != 16000 else np.asarray(audio, np.float32)
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()
    d = _decoder()
    toks = words(text)
    known = [t for t in toks if d.lookup_word(normalize(t)) is not None]
    if not known:
        raise RuntimeError(f"none of the words of {text!r} are in the pocketsphinx dictionary")
    d.set_align_text(" ".join(normalize(t) for t in known))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    segs = [s for s in (d.seg() or []) if s.word not in ("<s>", "</s>", "<sil>", "[NOISE]")]
    if len(segs) != len(known):
        raise RuntimeError(f"pocketsphinx aligned {len(segs)} of {len(known)} words of {text!r}")
    return [Word(t, round(s.start_frame / 100, 3), round((s.end_frame + 1) / 100, 3))
            for t, s in zip(known, segs)]
