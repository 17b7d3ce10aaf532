"""One reply of the cascade, computed in a worker thread: end-of-turn check → ASR → LLM → TTS.

The frame loop (``CascadeSystem.step``) starts a :class:`Reply` as soon as the user has been silent
for a moment (speculatively, as Hugging Face's speech-to-speech does), confirms it once the turn
detector decides that the turn is over, and cancels it when the user speaks again. The reply streams
its audio sentence by sentence as :class:`Chunk`s.

Time is kept on the conversation's clock (seconds of user audio since ``reset``). Each chunk carries
the clock time at which it was ready: the clock time at which the worker started plus the wall time
it spent since. A live system plays a chunk as soon as it arrives; an offline run plays it no sooner
than its ``ready`` time, so processing a file faster than real time does not make the cascade faster.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:]\s")
_NOT_SPOKEN = re.compile(r"[*_#`~<>|\[\]{}]")


@dataclass
class Chunk:
    """Audio of one sentence at the system's rate, with (sample offset, word) pairs for its text."""

    ready: float
    audio: np.ndarray
    words: list[tuple[int, str]]
    pos: int = 0  # samples already played


@dataclass
class ReplyTimings:
    speech_end: float  # clock time the user's speech ended (VAD)
    detector: str
    turn_p: float | None = None  # smart-turn probability, when that detector ran
    turn_check_s: float | None = None  # wall time of the smart-turn model
    asr_s: float | None = None
    confirmed_at: float | None = None  # clock time the turn was declared over
    llm_ttft_s: float | None = None  # LLM start -> first token (wall)
    llm_first_sentence_s: float | None = None  # LLM start -> first full sentence (wall)
    tts_first_s: float | None = None  # TTS of the first sentence (wall)
    first_ready: float | None = None  # clock time the first audio was ready
    user_text: str = ""
    reply_text: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()
             if k not in ("extra", "reply_text") and v is not None}
        if self.confirmed_at is not None:
            d["eot_delay_s"] = round(self.confirmed_at - self.speech_end, 3)
        d.update(self.extra)
        return d


def split_sentences(text: str, final: bool, first: bool = False) -> tuple[list[str], str]:
    """Complete sentences at the start of ``text`` and the rest. A clause ending in , ; or : counts as
    a sentence when it is long (12+ words) or, with ``first`` (nothing said yet), 4+ words, so that
    speech starts sooner; with ``final`` the rest is a sentence too."""
    out = []
    while True:
        m = _SENTENCE_END.search(text)
        if m is None:
            min_words = 4 if first and not out else 12
            m = next((c for c in _CLAUSE_END.finditer(text) if len(text[: c.end()].split()) >= min_words), None)
        if m is None:
            break
        out.append(text[: m.end()].strip())
        text = text[m.end():]
    if final and text.strip():
        out.append(text.strip())
        text = ""
    return [s for s in (_NOT_SPOKEN.sub(" ", s).strip() for s in out) if re.search(r"[A-Za-z0-9]", s)], text


class Reply(threading.Thread):
    """A reply to the user's turn ``audio`` (float32 at ``system.sample_rate``), started at clock ``start``."""

    def __init__(self, system, audio: np.ndarray, start: float, speech_end: float, messages: list[dict]):
        super().__init__(daemon=True, name="cascade-reply")
        self.sys, self.audio, self.messages = system, audio, messages
        self.cfg = system.cfg
        self.timings = ReplyTimings(speech_end=speech_end, detector=self.cfg.turn_detector)
        self._anchor = (start, time.monotonic())  # (clock, wall) pair the worker's clock runs from
        self._confirm = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._chunks: list[Chunk] = []
        self.waiting = False  # blocked on the frame loop's end-of-turn decision
        self.done = False
        self.empty = False  # nothing to answer (no words recognised)
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ called by the frame loop
    def now(self) -> float:
        """The worker's position on the conversation clock."""
        clock, wall = self._anchor
        return clock + (time.monotonic() - wall)

    @property
    def confirmed(self) -> bool:
        return self._confirm.is_set()

    def confirm(self, at: float) -> None:
        if not self._confirm.is_set():
            self.timings.confirmed_at = at
            self._confirm.set()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def take_ready(self, now: float) -> list[Chunk]:
        """The chunks ready by clock ``now``, in order (removed from the reply)."""
        with self._lock:
            n = 0
            while n < len(self._chunks) and self._chunks[n].ready <= now:
                n += 1
            out, self._chunks = self._chunks[:n], self._chunks[n:]
        return out

    def finished(self) -> bool:
        """Done and every chunk handed out."""
        with self._lock:
            return self.done and not self._chunks

    # ------------------------------------------------------------------ the worker
    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the frame loop in Frame.info
            self.error = e
        finally:
            self.done = True

    def _run(self) -> None:
        t, cfg = self.timings, self.cfg
        if cfg.turn_detector == "smart":
            w0 = time.monotonic()
            t.turn_p = self.sys.smart_turn().probability(self.audio, self.sys.sample_rate)
            t.turn_check_s = time.monotonic() - w0
            if t.turn_p >= cfg.smart_threshold:
                self.confirm(self.now())
        w0 = time.monotonic()
        from fullduplex.engines import asr

        t.user_text = " ".join(w.word for w in asr.transcribe(self.audio, self.sys.sample_rate)).strip()
        t.asr_s = time.monotonic() - w0
        if not t.user_text:
            self.empty = True
            return
        if cfg.turn_detector == "text":
            from fullduplex.engines.turn import text_turn_complete

            if text_turn_complete(t.user_text):
                self.confirm(self.now())
        if not self._wait_for_confirm():
            return
        self._speak(self.messages + [{"role": "user", "content": t.user_text}])

    def _wait_for_confirm(self) -> bool:
        paused_at = self.now()
        self.waiting = True
        while not self._confirm.wait(0.005):
            if self.cancelled:
                return False
        self.waiting = False
        # the worker resumes when the turn was declared over, on the conversation's clock
        self._anchor = (max(paused_at, self.timings.confirmed_at), time.monotonic())
        return not self.cancelled

    def _speak(self, messages: list[dict]) -> None:
        t, cfg = self.timings, self.cfg
        w0 = time.monotonic()
        pending, said = "", []
        stream = self.sys.llm.stream(messages, max_tokens=cfg.max_tokens, cancelled=lambda: self.cancelled)
        for piece in stream:
            if t.llm_ttft_s is None:
                t.llm_ttft_s = time.monotonic() - w0
            pending += piece
            sentences, pending = split_sentences(pending, final=False, first=not said)
            for s in sentences:
                if t.llm_first_sentence_s is None:
                    t.llm_first_sentence_s = time.monotonic() - w0
                self._say(s)
                said.append(s)
            if self.cancelled:
                return
        sentences, _ = split_sentences(pending, final=True)
        for s in sentences:
            if t.llm_first_sentence_s is None:
                t.llm_first_sentence_s = time.monotonic() - w0
            self._say(s)
            said.append(s)
        t.reply_text = " ".join(said)

    def _say(self, sentence: str) -> None:
        if self.cancelled:
            return
        w0 = time.monotonic()
        audio, words = self.sys.synthesize(sentence)
        if self.timings.tts_first_s is None:
            self.timings.tts_first_s = time.monotonic() - w0
        ready = self.now()
        if self.timings.first_ready is None:
            self.timings.first_ready = ready
        with self._lock:
            self._chunks.append(Chunk(ready, audio, words))


BACKCHANNELS = set("mhm mm mmm hmm hm mmhmm mhmm uh huh uhhuh um yeah yea yes yep yup ok okay right sure "
                   "oh ah wow cool alright i see great nice".split())


class OverlapCheck(threading.Thread):
    """Transcribes what the user says over the system, to tell a barge-in from a backchannel."""

    def __init__(self, audio: np.ndarray, sample_rate: int, start: float):
        super().__init__(daemon=True, name="cascade-overlap")
        self.audio, self.sample_rate = audio, sample_rate
        self._anchor = (start, time.monotonic())
        self.words: list[str] = []
        self.ready: float | None = None  # clock time the transcript was ready
        self.done = False

    def now(self) -> float:
        clock, wall = self._anchor
        return clock + (time.monotonic() - wall)

    def content_words(self) -> list[str]:
        from fullduplex.engines.text import normalize

        return [w for w in self.words if normalize(w) not in BACKCHANNELS]

    def run(self) -> None:
        try:
            from fullduplex.engines import asr

            self.words = [w.word for w in asr.transcribe(self.audio, self.sample_rate)]
        finally:
            self.ready = self.now()
            self.done = True
