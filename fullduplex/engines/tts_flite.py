"""flite voices (CMU): audio plus word timings from the engine's phone end times (-psdur).

flite prints phone end times but not which word each phone belongs to, so the phones of each word
are looked up once (one flite call on the words separated by commas, cached per process) and the
utterance's phone sequence is cut into words by those counts. When the counts do not add up (a
post-lexical rule changed a pronunciation), the caller falls back to forced alignment.
"""

from __future__ import annotations

import os
import tempfile


from .base import Word, require_binary, run
from .text import normalize, words

INSTALL = "apt-get install flite"
_PHONE_COUNTS: dict[tuple[str, str], int] = {}


def _phone_counts(voice: str, toks: list[str]) -> list[int]:
    """Number of phones flite says for each token on its own (cached)."""
    todo = sorted({normalize(t) for t in toks if (voice, normalize(t)) not in _PHONE_COUNTS})
    if todo:
        out = run([require_binary("flite", INSTALL), "-voice", voice, "-ps", "-t", ", ".join(todo), "none"])
        groups = [g.split() for g in " ".join(out.split()).split("pau")]
        groups = [g for g in groups if g]
        if len(groups) == len(todo):
            for w, g in zip(todo, groups):
                _PHONE_COUNTS[(voice, w)] = len(g)
        else:
            return []
    return [_PHONE_COUNTS[(voice, normalize(t))] for t in toks]


def _words_from_phones(psdur: str, toks: list[str], counts: list[int]) -> list[Word] | None:
    phones = []  # (name, start, end)
    t0 = 0.0
    for item in psdur.split():
        name, _, end = item.rpartition(":")
        phones.append((name, t0, float(end)))
        t0 = float(end)
    speech = [p for p in phones if p[0] != "pau"]
    if not counts or sum(counts) != len(speech):
        return None
    out, i = [], 0
    for tok, n in zip(toks, counts):
        if n == 0:
            return None
        out.append(Word(tok, round(speech[i][1], 3), round(speech[i + n - 1][2], 3)))
        i += n
    return out


def synthesize(text: str, voice: str, rate: float, pitch: float, base_f0: float):
    """Returns (audio float32 [T], sample_rate, words or None)."""
    exe = require_binary("flite", INSTALL)
    fd, wav = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        cmd = [exe, "-voice", voice, "--setf", f"duration_stretch={1.0 / rate:.3f}",
               "--setf", f"int_f0_target_mean={base_f0 * pitch:.1f}", "-psdur", "-o", wav, "-t", text]
        psdur = run(cmd)
        import soundfile as sf

        x, sr = sf.read(wav, dtype="float32")
    finally:
        os.unlink(wav)
    toks = words(text)
    return x, int(sr), _words_from_phones(psdur, toks, _phone_counts(voice, toks))
