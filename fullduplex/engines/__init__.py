"""Adapters over external speech engines: the only place that runs or imports one.

- :mod:`.tts` — voices (flite, festival, espeak-ng/mbrola, pico) with rate/pitch/gain and word times
- :mod:`.asr` — faster-whisper (bundled tiny.en) with word timestamps
- :mod:`.align` — pocketsphinx forced alignment of a known transcript
- :mod:`.vad` — silero VAD speech segments
"""

from .base import EngineNotInstalled, Word

__all__ = ["EngineNotInstalled", "Word"]
