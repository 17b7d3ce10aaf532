"""Audio I/O, resampling and channel handling (soundfile, soxr, sphn)."""

from .io import AudioError, info, read, resample, to_mono, write

__all__ = ["AudioError", "info", "read", "resample", "to_mono", "write"]
