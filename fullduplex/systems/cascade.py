"""The cascade baseline behind the duplex interface: VAD → end of turn → ASR → LLM → TTS.

    system = CascadeSystem(CascadeConfig(turn_detector="smart"))
    frame = system.step(user_frame)          # every 80 ms, never blocks on the heavy stages

Built the way voice-agent frameworks build it:

- silero VAD on every frame; a user turn opens after ``min_speech_s`` of speech;
- after ``candidate_silence_s`` of silence a :class:`~.cascade_reply.Reply` starts in a worker thread
  (speculative ASR); the turn detector then declares the turn over — ``silence`` after
  ``silence_s``; ``smart`` when Smart-Turn v3 says so (else after ``max_silence_s``); ``text`` when
  the transcript sounds finished (else after ``max_silence_s``). Speech before the reply is heard
  cancels it and the turn goes on;
- the LLM's reply is spoken sentence by sentence; until audio is ready the system emits silence;
- barge-in: user speech lasting ``barge_in_s`` while the system talks stops it at once and drops the
  rest of the reply; shorter sounds ("mhm") do not. With ``barge_in_min_words`` the overlapping speech
  is transcribed first and backchannel words do not count (slower to stop, fewer false stops). Only
  what was actually said stays in the history.

Per-turn stage timings appear in ``Frame.info["turn"]`` on the frame where the reply starts.
With ``realtime=False`` (offline files) a reply's audio is played no sooner than the wall time its
stages took (see ``cascade_reply``); with ``realtime=True`` (a live server) nothing ever waits.
"""

from __future__ import annotations

import atexit
import time
import weakref
from dataclasses import dataclass

import numpy as np

from .base import Frame
from .cascade_reply import Chunk, OverlapCheck, Reply

DETECTORS = ("silence", "smart", "text")


@dataclass
class CascadeConfig:
    # LLM: the bundled SmolLM2-135M-Instruct, or any OpenAI-compatible endpoint
    llm_url: str | None = None
    llm_model: str = "default"
    system_prompt: str = ("You are a friendly voice assistant. Answer in one or two short sentences, "
                          "in plain spoken English.")
    max_tokens: int = 48
    temperature: float = 0.0
    # voice
    voice: str = "flite-slt"
    rate: float = 1.0
    pitch: float = 1.0
    gain_db: float = 0.0
    # turn taking
    turn_detector: str = "silence"  # silence | smart | text
    vad_threshold: float = 0.5
    min_speech_s: float = 0.15  # shorter bursts of speech are noise, not the start of a turn
    pre_speech_s: float = 0.3  # audio kept before the detected speech start
    candidate_silence_s: float = 0.2  # silence after which the reply starts speculatively
    silence_s: float = 0.5  # the silence detector's end of turn (OpenAI's server_vad default)
    max_silence_s: float = 1.5  # smart/text: end of turn after this much silence whatever they say
    smart_threshold: float = 0.5
    barge_in_s: float = 0.6  # user speech this long while the system talks stops it ...
    barge_in_min_words: int = 0  # ... if it holds this many words besides "mhm", "yeah"... (0: no ASR check)
    # time
    realtime: bool = False  # True: live (never wait for the worker); False: simulate processing time

    def __post_init__(self):
        if self.turn_detector not in DETECTORS:
            raise ValueError(f"turn_detector must be one of {DETECTORS}, not {self.turn_detector!r}")


class CascadeSystem:
    """A ``DuplexSystem`` made of separate VAD, ASR, LLM and TTS engines."""

    sample_rate = 24_000
    frame_size = 1_920
    KEEP_S = 8.0  # user audio kept outside a turn (to open one late, after a barge-in)

    def __init__(self, cfg: CascadeConfig | None = None, llm=None, warmup: bool = True):
        self.cfg = cfg or CascadeConfig()
        if llm is None:
            llm = self._default_llm()
        self.llm = llm
        from fullduplex.engines.tts import get_voice
        from fullduplex.engines.turn import VadStream

        self.voice = get_voice(self.cfg.voice)
        self._vad = VadStream(self.sample_rate)
        self._smart = None
        if self.cfg.turn_detector == "smart":
            self.smart_turn()  # load now: a missing model is an error at start, not mid-conversation
        if warmup:  # else the first reply pays for loading the engines
            self.warmup()
        self.reset()
        me = weakref.ref(self)  # a worker still inside an engine at exit aborts the process: wait for it
        atexit.register(lambda: me() is not None and me().close(timeout=5.0))

    def _default_llm(self):
        c = self.cfg
        if c.llm_url:
            from fullduplex.engines.llm import OpenAIChat

            return OpenAIChat(c.llm_url, model=c.llm_model, temperature=c.temperature)
        from .cascade_llm import LocalSmolLM

        return LocalSmolLM(temperature=c.temperature)

    def smart_turn(self):
        if self._smart is None:
            from fullduplex.engines.turn import SmartTurn

            self._smart = SmartTurn()
        return self._smart

    def warmup(self) -> None:
        """Load every engine now (the first reply would otherwise pay for it)."""
        from fullduplex.engines import asr

        asr.transcribe(np.zeros(self.sample_rate // 2, np.float32), self.sample_rate)
        self.synthesize("Hello.")
        if hasattr(self.llm, "warmup"):
            self.llm.warmup()

    def synthesize(self, text: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """TTS of one sentence at the system's rate, with (sample offset, word) pairs."""
        from fullduplex.audio import resample
        from fullduplex.engines.text import words
        from fullduplex.engines.tts import synthesize

        c = self.cfg
        try:
            x, sr, ws = synthesize(text, self.voice, rate=c.rate, pitch=c.pitch, gain_db=c.gain_db)
            offsets = [(int(w.start * self.sample_rate), w.word) for w in ws]
        except RuntimeError:  # no word times (alignment failed): say it without them
            x, sr, _ = _synthesize_untimed(text, self.voice, c)
            offsets = [(0, w) for w in words(text)]
        return resample(x, sr, self.sample_rate).astype(np.float32), offsets

    def close(self, timeout: float = 10.0) -> None:
        """Cancel the reply in flight and wait for its worker (call before the process exits)."""
        for worker in (getattr(self, "_reply", None), getattr(self, "_check", None)):
            if worker is not None:
                if hasattr(worker, "cancel"):
                    worker.cancel()
                worker.join(timeout)

    # ------------------------------------------------------------------ the frame loop
    def reset(self) -> None:
        self.close()
        self._vad.reset()
        self._n = 0  # frames seen
        self._audio = np.zeros(0, np.float32)  # the user's audio of the open turn (+ pre-roll)
        self._audio_t0 = 0.0  # clock time of self._audio[0]
        self._vad_t = 0.0  # clock time up to which the VAD has seen audio
        self._speaking = False
        self._run_start = 0.0  # start of the current (or last) run of speech
        self._speech_end = 0.0  # end of the last speech window
        self._turn_open = False
        self._reply: Reply | None = None
        self._playing = False  # the reply's audio has started
        self._play_start = 0.0  # clock time the reply's audio started
        self._check: OverlapCheck | None = None  # transcribing speech over the reply
        self._checked = (-1.0, 0.0)  # (start, length) of the speech run the last check covered
        self._queue: list[Chunk] = []
        self._spoken: list[str] = []  # words of the current reply already played
        self.history: list[dict] = [{"role": "system", "content": self.cfg.system_prompt}]
        self.turns: list[dict] = []  # timings of every reply, in order

    def step(self, user: np.ndarray) -> Frame:
        user = np.asarray(user, dtype=np.float32).reshape(-1)
        if user.shape[0] != self.frame_size:
            raise ValueError(f"expected {self.frame_size} samples, got {user.shape[0]}")
        self._n += 1
        now = self._n * self.frame_size / self.sample_rate
        self._keep_audio(user)
        for p in self._vad.push(user):
            self._on_window(p)
        info: dict = {}
        self._turn_taking(now, info)
        audio, text = self._play(now, info)
        return Frame(audio, text, info)

    def _keep_audio(self, user: np.ndarray) -> None:
        """Keep the open turn's audio; between turns only enough to open one late (after barge-in)."""
        self._audio = np.concatenate([self._audio, user])
        if not self._turn_open:
            keep = int(self.KEEP_S * self.sample_rate)
            drop = max(0, len(self._audio) - keep)
            self._audio = self._audio[drop:]
            self._audio_t0 += drop / self.sample_rate

    def _on_window(self, p: float) -> None:
        self._vad_t += self._vad.window_s
        thr = self.cfg.vad_threshold
        if p >= thr:
            if not self._speaking:
                self._speaking = True
                self._run_start = self._vad_t - self._vad.window_s
            self._speech_end = self._vad_t
        elif p < thr - 0.15:
            self._speaking = False

    def _run_s(self) -> float:
        """Length of the run of speech going on now (0 when silent)."""
        return self._speech_end - self._run_start if self._speaking else 0.0

    def _event(self, info: dict, name: str, **data) -> None:
        info.setdefault("events", []).append({"event": name, **data})

    def _turn_taking(self, now: float, info: dict) -> None:
        c, r = self.cfg, self._reply
        run = self._run_s()
        if r is not None and self._playing:
            if self._overlap_is_barge_in(now, info):  # stop and drop the rest of the reply
                self._event(info, "barge_in", after_s=round(now - max(self._run_start, self._play_start), 3))
                self._end_reply(interrupted=True)
                self._open_turn()
            return
        if r is not None:  # replying, nothing heard yet
            if run >= c.min_speech_s and self._run_start >= r.timings.speech_end - 1e-6:
                r.cancel()  # the user went on: the turn was not over
                self._reply = None
                self._event(info, "turn_continues", was_declared_over=r.confirmed)
                return
            silent = now - self._speech_end
            if not r.confirmed and not self._speaking:
                limit = c.silence_s if c.turn_detector == "silence" else c.max_silence_s
                if silent >= limit:
                    r.confirm(now)
            if r.finished():  # nothing to say: no words heard, an empty reply, or an error
                if r.error is not None:
                    self._event(info, "error", error=f"{type(r.error).__name__}: {r.error}")
                self._reply = None
                self._turn_open = False
            return
        if not self._turn_open:
            if run >= c.min_speech_s:
                self._open_turn()
            return
        silent = now - self._speech_end
        if not self._speaking and silent >= min(c.candidate_silence_s, c.silence_s):
            self._start_reply(now)

    def _overlap_is_barge_in(self, now: float, info: dict) -> bool:
        """Whether the user's speech over the reply is an interruption (see ``barge_in_min_words``).
        Only speech since the reply started playing counts: the end of the user's own turn is no overlap."""
        c = self.cfg
        overlap_start = max(self._run_start, self._play_start)
        if c.barge_in_min_words <= 0:
            return self._speaking and self._speech_end - overlap_start >= c.barge_in_s
        chk = self._check
        if chk is None:  # transcribe the overlap once it ends, or every 0.5 s while it goes on
            last = self._speech_end - overlap_start
            grown = last - (self._checked[1] if self._checked[0] == self._run_start else 0.0)
            if self._speaking:
                due = last >= c.barge_in_s + 0.5 and grown >= 0.5
            else:
                due = last >= c.barge_in_s and grown > 0.1 and now - self._speech_end < 1.0
            if due:
                a = int((self._run_start - 0.1 - self._audio_t0) * self.sample_rate)
                b = int((self._speech_end + 0.1 - self._audio_t0) * self.sample_rate)
                self._check = OverlapCheck(self._audio[max(0, a):b].copy(), self.sample_rate, now)
                self._checked = (self._run_start, last)
                self._check.start()
            return False
        if not c.realtime:  # the transcript is no sooner than ASR took
            while not chk.done and chk.now() < now:
                time.sleep(0.002)
        if not chk.done or chk.ready > now:
            return False
        self._check = None
        if len(chk.content_words()) >= c.barge_in_min_words:
            return True
        self._event(info, "backchannel", words=chk.words)
        return False

    def _open_turn(self) -> None:
        self._turn_open = True
        start = self._run_start - self.cfg.pre_speech_s
        drop = int(max(0.0, start - self._audio_t0) * self.sample_rate)
        self._audio = self._audio[drop:]
        self._audio_t0 += drop / self.sample_rate

    def _start_reply(self, now: float) -> None:
        end = int((self._speech_end + 0.1 - self._audio_t0) * self.sample_rate)
        audio = self._audio[: max(0, end)].copy()
        self._reply = Reply(self, audio, now, self._speech_end, list(self.history))
        self._reply.start()

    def _play(self, now: float, info: dict) -> tuple[np.ndarray, str]:
        r = self._reply
        out = np.zeros(self.frame_size, np.float32)
        if r is None:
            return out, ""
        if not self.cfg.realtime:  # no audio sooner than the stages' wall time allows
            while not (r.done or r.waiting or r.cancelled) and r.now() < now:
                time.sleep(0.002)
        self._queue += r.take_ready(now)
        filled, said = 0, []
        while filled < self.frame_size and self._queue:
            ch = self._queue[0]
            if not self._playing:
                self._start_playing(now, info)
            n = min(self.frame_size - filled, len(ch.audio) - ch.pos)
            said += [w for off, w in ch.words if ch.pos <= off < ch.pos + n]
            out[filled:filled + n] = ch.audio[ch.pos:ch.pos + n]
            ch.pos += n
            filled += n
            if ch.pos >= len(ch.audio):
                self._queue.pop(0)
        self._spoken += said
        text = "".join(" " + w for w in said)
        if self._playing and not self._queue and r.finished():
            if r.error is not None:
                self._event(info, "error", error=f"{type(r.error).__name__}: {r.error}")
            self._event(info, "reply_end", text=r.timings.reply_text)
            self._end_reply(interrupted=False)
        return out, text

    def _start_playing(self, now: float, info: dict) -> None:
        r = self._reply
        self._playing = True
        self._play_start = now - self.frame_size / self.sample_rate  # this frame's start
        self._turn_open = False
        self._spoken = []
        t = r.timings.as_dict()
        t["response_latency_s"] = round(now - r.timings.speech_end, 3)
        t["ready_latency_s"] = round(r.timings.first_ready - r.timings.speech_end, 3)
        info["turn"] = t
        self._event(info, "reply_start")
        self.turns.append(t)

    def _end_reply(self, interrupted: bool) -> None:
        r = self._reply
        r.cancel()
        self.history.append({"role": "user", "content": r.timings.user_text})
        said = " ".join(self._spoken) + "..." if interrupted else r.timings.reply_text
        self.history.append({"role": "assistant", "content": said})
        if self.turns:
            self.turns[-1]["interrupted"] = interrupted
        self._reply, self._playing, self._queue, self._spoken = None, False, [], []
        self._check, self._checked = None, (-1.0, 0.0)


def _synthesize_untimed(text: str, voice, cfg: CascadeConfig):
    """TTS without word times (the voice's engine call only, no alignment)."""
    from fullduplex.engines import tts

    v = voice
    raw = {"flite": lambda: tts.tts_flite.synthesize(text, v.id, cfg.rate, cfg.pitch, v.f0),
           "espeak": lambda: tts.tts_espeak.synthesize(text, v.id, cfg.rate, cfg.pitch),
           "pico": lambda: tts.tts_pico.synthesize(text, v.id, cfg.rate, cfg.pitch),
           "festival": lambda: tts.tts_festival.synthesize_many([text], v.id, cfg.rate, cfg.pitch, v.f0)[0]}
    x, sr, _ = raw[v.engine]()
    x = np.asarray(x, np.float32)
    x = x * (10 ** ((tts.REF_RMS_DB + cfg.gain_db) / 20) / np.sqrt(np.mean(x ** 2) + 1e-12))
    return x, sr, None


def cascade_from_name(name: str, realtime: bool = False, llm=None) -> CascadeSystem:
    """``cascade[:DETECTOR][@URL]`` -> a CascadeSystem, e.g. ``cascade:smart`` (or ``cascade-smart``),
    ``cascade@http://localhost:8000/v1`` (an OpenAI-compatible endpoint; model name from
    ``$FULLDUPLEX_CASCADE_MODEL``, default "default")."""
    import os

    if not (name == "cascade" or name.startswith(("cascade:", "cascade-", "cascade@"))):
        raise ValueError(f"not a cascade system name: {name!r}")
    rest = name[len("cascade"):]
    url = None
    if "@" in rest:
        rest, url = rest.split("@", 1)
    detector = rest[1:] if rest[:1] in (":", "-") else "silence"
    cfg = CascadeConfig(turn_detector=detector, llm_url=url, realtime=realtime,
                        llm_model=os.environ.get("FULLDUPLEX_CASCADE_MODEL", "default"))
    return CascadeSystem(cfg, llm=llm)


class BatchedCascade:
    """N independent cascade conversations stepped together (what the server drives); one LLM."""

    sample_rate = CascadeSystem.sample_rate
    frame_size = CascadeSystem.frame_size

    def __init__(self, name: str, batch_size: int, realtime: bool = True):
        first = cascade_from_name(name, realtime=realtime)
        self.sessions = [first] + [cascade_from_name(name, realtime=realtime, llm=first.llm)
                                   for _ in range(batch_size - 1)]
        self.batch_size = batch_size

    def reset(self, index: int | None = None) -> None:
        for i, s in enumerate(self.sessions):
            if index is None or i == index:
                s.reset()

    def step(self, user: np.ndarray, active=None) -> list[Frame]:
        user = np.asarray(user, dtype=np.float32).reshape(self.batch_size, -1)
        out = []
        for i, s in enumerate(self.sessions):
            if active is None or active[i]:
                out.append(s.step(user[i]))
            else:
                out.append(Frame(np.zeros(self.frame_size, np.float32)))
        return out
