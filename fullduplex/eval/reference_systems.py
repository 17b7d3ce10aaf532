"""Built-in reference systems with known behaviour: sanity checks for the metrics and baselines
without published numbers.

- ``silence``: never speaks.
- ``scripted``: a causal energy endpointer. After the user's speech is followed by ``delay_s`` of
  silence it plays a fixed long reply (TTS); it stops when the user talks over it for
  ``barge_in_s`` (``scripted-nonstop`` never stops). Like a cascade with a 0.6 s VAD timeout
  and no language understanding.
- ``echo``: returns the user's audio (the echo check must flag it).
"""

from __future__ import annotations

import numpy as np

from fullduplex.systems import Frame

SR, FRAME = 24_000, 1_920
REPLY = ("Okay, sure. Let me tell you about that. Once upon a time there was a little fox who lived near a "
         "quiet river. Every day was much the same, and that was fine. But one morning, the fox found a "
         "strange map.")


class SilenceSystem:
    sample_rate, frame_size = SR, FRAME

    def reset(self) -> None:
        pass

    def step(self, user: np.ndarray) -> Frame:
        return Frame(np.zeros(FRAME, np.float32))


class EchoSystem(SilenceSystem):
    def step(self, user: np.ndarray) -> Frame:
        return Frame(np.asarray(user, np.float32).copy())


_REPLY_CACHE: dict[str, tuple[np.ndarray, list]] = {}


def reply_audio(text: str = REPLY, voice: str = "flite-slt") -> tuple[np.ndarray, list]:
    """The scripted reply at 24 kHz and its words (synthesized once per process)."""
    if text not in _REPLY_CACHE:
        from fullduplex.audio import resample
        from fullduplex.engines import tts

        a, sr, ws = tts.synthesize(text, voice)
        _REPLY_CACHE[text] = (resample(a, sr, SR), ws)
    return _REPLY_CACHE[text]


class ScriptedSystem:
    """Endpointing by frame energy; see the module docstring."""

    sample_rate, frame_size = SR, FRAME

    def __init__(self, delay_s: float = 0.6, barge_in_s: float = 0.24, yields: bool = True,
                 threshold_dbfs: float = -45.0):
        self.reply, self.reply_words = reply_audio()
        self.delay_frames = max(1, int(round(delay_s * SR / FRAME)))
        self.barge_frames = max(1, int(round(barge_in_s * SR / FRAME)))
        self.yields = yields
        self.threshold = threshold_dbfs
        self.reset()

    def reset(self) -> None:
        self.heard = False        # user speech since the last reply
        self.silent = 0           # consecutive silent user frames
        self.loud = 0             # consecutive loud user frames while speaking
        self.pos = None           # sample position in the reply while speaking

    def step(self, user: np.ndarray) -> Frame:
        u = np.asarray(user, np.float64)
        active = 10 * np.log10(np.mean(u ** 2) + 1e-12) > self.threshold
        out = np.zeros(FRAME, np.float32)
        text = ""
        if self.pos is not None:  # speaking
            self.loud = self.loud + 1 if active else 0
            if self.yields and self.loud >= self.barge_frames:
                self.pos, self.heard, self.silent = None, True, 0
                return Frame(out, "", {"event": "yield"})
            seg = self.reply[self.pos:self.pos + FRAME]
            out[:len(seg)] = seg
            t0, t1 = self.pos / SR, (self.pos + FRAME) / SR
            text = "".join(w.word + " " for w in self.reply_words if t0 <= w.start < t1)
            self.pos += FRAME
            if self.pos >= len(self.reply):
                self.pos, self.heard = None, False
            return Frame(out, text)
        if active:
            self.heard, self.silent = True, 0
        elif self.heard:
            self.silent += 1
            if self.silent >= self.delay_frames:
                self.pos, self.loud, self.heard = 0, 0, False
        return Frame(out, text)


BUILTIN = {
    "silence": SilenceSystem,
    "scripted": ScriptedSystem,
    "scripted-nonstop": lambda: ScriptedSystem(yields=False),
    "echo": EchoSystem,
}
