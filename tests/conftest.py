import os

os.environ.setdefault("NO_TORCH_COMPILE", "1")  # before anything imports Kyutai's moshi

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "fullduplex" / "assets"


@pytest.fixture(scope="session")
def sample_wav() -> Path:
    """The bundled speech sample (24 kHz mono, made with espeak-ng)."""
    return ASSETS / "sample.wav"
