"""Where the codec bundled with the package lives."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def default_codec_path() -> Path:
    """The bundled codec checkpoint folder (config.json + model.safetensors): the default duplex
    model's codec (the ``small`` size, 8 codebooks of 1,024; see assets/model/MODEL_CARD.md)."""
    return ASSETS / "model" / "codec"


def sample_path() -> Path:
    """A short bundled speech sample (24 kHz mono wav)."""
    return ASSETS / "sample.wav"
