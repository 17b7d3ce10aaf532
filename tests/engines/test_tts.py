import numpy as np
import pytest

from fullduplex.engines import EngineNotInstalled, asr, tts, vad
from fullduplex.engines.base import require_binary

TEXT = "Once upon a time there was a little fox who lived near the river."


def test_at_least_ten_voices_installed():
    assert len(tts.available_voices()) >= 10


@pytest.mark.parametrize("name", ["flite-slt", "festival-ked", "mbrola-us2", "pico-en-gb", "piper-joe"])
def test_voice_words_and_rate(name):
    if not tts.is_installed(tts.VOICES[name]):
        pytest.skip(f"{name} not installed")
    x, sr, ws = tts.synthesize(TEXT, name)
    assert x.dtype == np.float32 and [w.word for w in ws] == TEXT.rstrip(".").split()
    assert all(0 <= w.start < w.end <= len(x) / sr + 1e-3 for w in ws)
    fast, _, _ = tts.synthesize(TEXT, name, rate=1.4)
    assert len(fast) / sr < 0.85 * len(x) / sr


def test_gain_controls_loudness():
    a, _, _ = tts.synthesize(TEXT, "flite-rms", gain_db=0)
    b, _, _ = tts.synthesize(TEXT, "flite-rms", gain_db=-10)
    ratio = 20 * np.log10(np.sqrt((b ** 2).mean()) / np.sqrt((a ** 2).mean()))
    assert ratio == pytest.approx(-10, abs=0.5)


def test_missing_engine_says_how_to_install():
    with pytest.raises(EngineNotInstalled, match="install"):
        require_binary("no-such-tts-engine", "apt-get install no-such-tts-engine")


def test_vad_and_asr_on_synthetic_speech():
    x, sr, ws = tts.synthesize(TEXT, "flite-slt")
    y = np.concatenate([np.zeros(sr, np.float32), x, np.zeros(sr, np.float32)])
    segs = vad.speech_segments(y, sr)
    assert len(segs) >= 1 and abs(segs[0][0] - 1.0) < 0.15 and abs(segs[-1][1] - (1 + len(x) / sr)) < 0.2
    words = [w.word.strip(".,").lower() for w in asr.transcribe(y, sr)]
    assert sum(w in words for w in ("fox", "river", "little")) >= 2


def test_the_neural_voice_says_the_same_every_time():
    if not tts.is_installed(tts.VOICES["piper-joe"]):
        pytest.skip("piper-joe not installed")
    a, sr, wa = tts.synthesize(TEXT, "piper-joe")
    b, _, wb = tts.synthesize(TEXT, "piper-joe")
    assert np.array_equal(a, b) and wa == wb
    heard = " ".join(w.word for w in asr.transcribe(a, sr)).lower()
    assert "little fox" in heard and "river" in heard
