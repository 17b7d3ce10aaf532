"""Read and write audio files as float32 arrays shaped [channels, samples].

wav/flac/ogg (Vorbis) go through soundfile, .opus through sphn; resampling uses soxr.
Every failure is raised as :class:`AudioError` with a message that says what to do.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SOUNDFILE_EXTS = {".wav", ".flac", ".ogg"}
OPUS_EXTS = {".opus"}
SUPPORTED = sorted(SOUNDFILE_EXTS | OPUS_EXTS)


class AudioError(ValueError):
    """A file that cannot be used as audio, or audio in the wrong shape or rate."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, expected an audio file ({', '.join(SUPPORTED)})")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: the file is empty (0 bytes); re-record or re-export it")
    ext = p.suffix.lower()
    if ext not in SOUNDFILE_EXTS | OPUS_EXTS:
        raise AudioError(f"{p}: unsupported format '{ext or '(none)'}'; use one of {', '.join(SUPPORTED)}")
    return p


def info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, channel count and length of a file, without decoding it all."""
    p = _check_path(path)
    if p.suffix.lower() in OPUS_EXTS:
        x, sr = read(p)
        return AudioInfo(sr, x.shape[0], x.shape[1])
    import soundfile as sf

    try:
        i = sf.info(str(p))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError
        raise AudioError(f"{p}: not a readable audio file ({e}); is it corrupt or truncated?") from e
    return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample [C, T] or [T] float audio with soxr (high quality)."""
    if sr_in == sr_out:
        return x
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"invalid sample rates {sr_in} -> {sr_out}")
    import soxr

    if x.ndim == 1:
        return soxr.resample(x.astype(np.float32), sr_in, sr_out).astype(np.float32)
    y = soxr.resample(np.ascontiguousarray(x.T, dtype=np.float32), sr_in, sr_out)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average the channels of [C, T] audio into [1, T]."""
    if x.ndim == 1:
        return x[None].astype(np.float32)
    return x.mean(axis=0, keepdims=True).astype(np.float32)


def read(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    channels: int | None = None,
    *,
    allow_resample: bool = True,
    mix: bool = False,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 [channels, samples].

    Args:
        sample_rate: target rate; a file at another rate is resampled with a notice, or refused
            with a clear error when ``allow_resample`` is False.
        channels: the number of channels the caller needs (1 or 2). Stereo where mono is needed
            is an error unless ``mix`` is True (then the channels are averaged); mono where stereo is
            needed is always an error, since a second speaker cannot be invented.
    Returns:
        (audio [C, T] float32 in [-1, 1], sample_rate)
    """
    p = _check_path(path)
    ext = p.suffix.lower()
    try:
        if ext in OPUS_EXTS:
            import sphn

            data, sr = sphn.read_opus(str(p))
            x = np.asarray(data, dtype=np.float32)
            if x.ndim == 1:
                x = x[None]
        else:
            import soundfile as sf

            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
            x = np.ascontiguousarray(data.T)
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{p}: cannot decode audio ({e}); is the file corrupt or truncated?") from e
    sr = int(sr)
    if x.shape[-1] == 0:
        raise AudioError(f"{p}: contains no audio samples")
    if not np.isfinite(x).all():
        raise AudioError(f"{p}: contains NaN or infinite samples")
    if channels is not None:
        if channels == 1 and x.shape[0] > 1:
            if not mix:
                raise AudioError(
                    f"{p}: has {x.shape[0]} channels where mono is expected; "
                    "pass a mono file, or ask for a downmix (--mix)"
                )
            x = to_mono(x)
        elif channels == 2 and x.shape[0] != 2:
            raise AudioError(
                f"{p}: has {x.shape[0]} channel(s) where stereo is expected "
                "(left = system/assistant, right = user); give a two-channel file"
            )
        elif channels not in (1, 2):
            raise ValueError(f"channels must be 1, 2 or None, got {channels}")
    if sample_rate is not None and sr != sample_rate:
        if not allow_resample:
            raise AudioError(
                f"{p}: sample rate is {sr} Hz but {sample_rate} Hz is required; "
                f"resample it first (e.g. sox in.wav -r {sample_rate} out.wav)"
            )
        log.warning("%s: resampling %d Hz -> %d Hz", p, sr, sample_rate)
        x = resample(x, sr, sample_rate)
        sr = sample_rate
    return x, sr


def write(path: str | os.PathLike, x: np.ndarray, sample_rate: int) -> Path:
    """Write [C, T] or [T] float audio; the format follows the extension (.wav is 16-bit PCM).

    The file is written to a temporary name and renamed, so a crash never leaves half a file.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in SOUNDFILE_EXTS | OPUS_EXTS:
        raise AudioError(f"{p}: unsupported output format '{ext}'; use one of {', '.join(SUPPORTED)}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise AudioError(f"audio to write must be [channels, samples], got shape {x.shape}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}{ext}")
    try:
        if ext in OPUS_EXTS:
            import sphn

            sphn.write_opus(str(tmp), np.ascontiguousarray(x), sample_rate)
        else:
            import soundfile as sf

            subtype = "PCM_16" if ext in (".wav", ".flac") else None
            sf.write(str(tmp), np.clip(x, -1.0, 1.0).T, sample_rate, subtype=subtype)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
