"""What a system said and when: VAD segments -> IPUs -> episodes, ASR words per episode, each
episode classified with the rule that fired (evaluation.md §9.1). Also the echo check and signal
hygiene (M18). Everything runs on the output resampled to 16 kHz.

Episode classes:
- ``floor_take``: > 3 words or a word span >= 1 s (FDB's takeover rule, ``fdb_words``); no words
  but >= 1.5 s of speech (``vad_no_words``); <= 3 words but >= 2.5 s of speech (``vad_long``,
  an ASR miss).
- ``backchannel``: < 1 s and <= 2 words (``bc_short``), or <= 3 words that are mostly backchannel
  cues (``bc_cue``); a wordless blip < 1 s counts (``bc_blip``).
- ``other``: short speech that is neither.
VAD segments shorter than 120 ms are dropped as glitches (counted).

ASR runs on the first ``ASR_HEAD_S`` of each episode (enough to classify it and for FDB's rules)
plus the ``focus`` windows a scenario's lexical metrics read; ``asr_windows`` records what was
transcribed, and the system's own text is kept for the same windows (M16 compares like with like).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fullduplex.audio import read, resample
from fullduplex.data.stats import merge_segments

from . import text as T

SR = 16_000


def read16(path: Path) -> np.ndarray:
    """An audio file as one 16 kHz channel (channels mixed), the rate every measurement here uses."""
    x, sr = read(path, channels=1, mix=True)
    return resample(x[0], sr, SR)
GLITCH_S = 0.12
IPU_GAP_S = 0.2
EPISODE_GAP_S = 0.5
WORD_MARGIN_S = 0.3
ECHO_MAX_LAG_S = 0.5
ECHO_THRESHOLD = 0.5
ASR_HEAD_S = 4.0


@dataclass
class Episode:
    start: float
    end: float
    words: list = field(default_factory=list)  # [[word, start, end]]
    kind: str = ""
    rule: str = ""

    @property
    def dur(self) -> float:
        return self.end - self.start

    @property
    def text(self) -> str:
        return " ".join(w[0] for w in self.words)


@dataclass
class Analysis:
    duration: float
    segments: list          # raw VAD segments [[s, e]] (FDB-compatible settings)
    ipus: list              # [[s, e]] after glitch removal and 200 ms merging
    episodes: list          # [Episode]
    words: list             # all ASR words [[w, s, e]]
    glitches: int
    echo: float             # max normalised cross-correlation with the input, lags 0-500 ms
    hygiene: dict
    system_text: str = ""   # the system's text stream inside asr_windows
    asr_windows: list = field(default_factory=list)
    text_pieces: list | None = None  # the system's timed text [[start_s, text]]; None: it has no text stream

    @property
    def invalid(self) -> bool:
        return self.echo > ECHO_THRESHOLD

    def to_json(self) -> dict:
        d = asdict(self)
        d["invalid"] = self.invalid
        return d

    @staticmethod
    def from_json(d: dict) -> "Analysis":
        d = {k: v for k, v in d.items() if k != "invalid"}
        d["episodes"] = [Episode(**e) for e in d["episodes"]]
        return Analysis(**d)

    def floor_takes(self, after: float = -1e9) -> list[Episode]:
        return [e for e in self.episodes if e.kind == "floor_take" and e.start >= after]

    def speaking_at(self, t: float, tol: float = 0.1) -> bool:
        return any(s - tol <= t <= e + tol for s, e in self.ipus)

    def text_between(self, a: float, b: float) -> str | None:
        """The system's text stream produced in [a, b); None when the system has no text stream."""
        if self.text_pieces is None:
            return None
        return "".join(t for s, t in self.text_pieces if a <= s < b)

    def words_between(self, a: float, b: float) -> list:
        return [w for w in self.words if a <= (w[1] + w[2]) / 2 < b]


merge = merge_segments  # VAD segments -> IPUs / episodes, as data.stats does


def classify(ep: Episode) -> tuple[str, str]:
    n = len(ep.words)
    span = ep.words[-1][2] - ep.words[0][1] if n else 0.0
    if n and (span >= 1.0 or n > 3):
        return "floor_take", "fdb_words"
    if not n and ep.dur >= 1.5:
        return "floor_take", "vad_no_words"
    if n and ep.dur >= 2.5:
        return "floor_take", "vad_long"
    if not n:
        return ("backchannel", "bc_blip") if ep.dur < 1.0 else ("other", "no_words_1_1.5s")
    if ep.dur < 1.0 and n <= 2:
        return "backchannel", "bc_short"
    if T.is_cue_backchannel([w[0] for w in ep.words]):
        return "backchannel", "bc_cue"
    return "other", "short_not_bc"


def echo_score(out: np.ndarray, inp: np.ndarray) -> float:
    """Max over lags 0-500 ms of <out[t], inp[t - lag]> / (|out| |inp|)."""
    from scipy.signal import correlate

    n = min(len(out), len(inp))
    o, i = np.asarray(out[:n], np.float64), np.asarray(inp[:n], np.float64)
    den = np.linalg.norm(o) * np.linalg.norm(i)
    if den < 1e-6:
        return 0.0
    c = correlate(o, i, mode="full", method="fft")[n - 1:n - 1 + int(ECHO_MAX_LAG_S * SR) + 1]
    return float(np.max(np.abs(c)) / den)


def hygiene(x: np.ndarray, ipus: list) -> dict:
    """M18: clipping, speech level, loudest 50 ms in silence (>= 100 ms away from speech), DC."""
    hop = int(0.05 * SR)
    n = len(x) // hop
    fr = x[: n * hop].reshape(n, hop).astype(np.float64)
    db = 10 * np.log10((fr ** 2).mean(1) + 1e-12)
    t = (np.arange(n) + 0.5) * hop / SR
    speech = np.zeros(n, bool)
    for s, e in ipus:
        speech |= (t >= s - 0.1) & (t <= e + 0.1)
    clip = float(np.mean(np.abs(x) >= 0.999)) if len(x) else 0.0
    sil_max = float(db[~speech].max()) if (~speech).any() else None
    sp = float(10 * np.log10(np.mean(fr[speech] ** 2) + 1e-12)) if speech.any() else None
    ok = clip < 1e-3 and (sil_max is None or sil_max < -50.0) and bool(np.isfinite(x).all())
    return {"clipping_rate": clip, "speech_dbfs": sp, "silence_max_dbfs": sil_max,
            "dc_offset": float(np.mean(x)) if len(x) else 0.0, "ok": ok}


def asr_windows(episodes: list[Episode], duration: float, focus=()) -> list[list[float]]:
    """The stretches to transcribe: each episode's head, and the focus windows where there is speech."""
    wins = [[max(0.0, e.start - WORD_MARGIN_S), min(duration, min(e.end, e.start + ASR_HEAD_S) + WORD_MARGIN_S)]
            for e in episodes]
    for a, b in focus:
        for e in episodes:
            lo, hi = max(a, e.start), min(b, e.end)
            if hi > lo:
                wins.append([max(0.0, lo - WORD_MARGIN_S), min(duration, hi + WORD_MARGIN_S)])
    return merge(sorted(wins), 0.0)


def transcribe(x: np.ndarray, windows: list) -> list:
    """ASR words of each window, times shifted to the clip's time."""
    from fullduplex.engines import asr

    words = []
    for a, b in windows:
        seg = x[int(a * SR):int(b * SR)]
        if len(seg) < int(0.1 * SR):
            continue
        for w in asr.transcribe(seg, SR):
            words.append([w.word, round(w.start + a, 3), round(w.end + a, 3)])
    return words


def analyze(out16: np.ndarray, in16: np.ndarray, text_pieces=(), asr: bool = True, focus=()) -> Analysis:
    """out16/in16: float32 [T] at 16 kHz (same length); text_pieces: the system's timed text
    [{"start", "text"}]; focus: [[a, b]] windows transcribed in full."""
    from fullduplex.engines import vad

    dur = len(out16) / SR
    segs = [[round(s, 3), round(e, 3)] for s, e in vad.speech_segments(out16, SR)] if np.abs(out16).max(
        initial=0.0) > 1e-4 else []
    kept = [s for s in segs if s[1] - s[0] >= GLITCH_S]
    ipus = merge(kept, IPU_GAP_S)
    eps = [Episode(s, e) for s, e in merge(ipus, EPISODE_GAP_S)]
    wins = asr_windows(eps, dur, focus) if (asr and eps) else []
    words = transcribe(out16, wins)
    for ep in eps:
        ep.words = [w for w in words if ep.start - WORD_MARGIN_S <= (w[1] + w[2]) / 2 < ep.end + WORD_MARGIN_S]
        ep.kind, ep.rule = classify(ep)
    text = "".join(p["text"] for p in (text_pieces or ()) if any(a <= p["start"] < b for a, b in wins))
    pieces = [[round(float(p["start"]), 3), p["text"]] for p in text_pieces] if text_pieces is not None else None
    return Analysis(dur, segs, ipus, eps, words, len(segs) - len(kept), echo_score(out16, in16),
                    hygiene(out16, ipus), text, wins, pieces)
