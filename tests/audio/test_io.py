"""Audio I/O: formats, resampling, channel handling and clear errors for bad files."""

import logging

import numpy as np
import pytest

from fullduplex import audio
from fullduplex.audio import AudioError


@pytest.fixture
def speech(sample_wav):
    x, sr = audio.read(sample_wav, channels=1)
    assert sr == 24_000 and x.shape[0] == 1
    return x[:, : 24_000]


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".opus"])
def test_formats_round_trip(speech, tmp_path, ext):
    p = audio.write(tmp_path / f"a{ext}", speech, 24_000)
    y, sr = audio.read(p, 24_000, channels=1)
    assert y.shape[0] == 1 and abs(y.shape[1] - speech.shape[1]) <= 1200  # codecs may pad a little
    n = min(y.shape[1], speech.shape[1])
    if ext in (".wav", ".flac"):  # lossless (16-bit)
        assert np.abs(y[:, :n] - speech[:, :n]).max() < 1e-3
    else:  # lossy: still the same signal
        assert np.corrcoef(y[0, :n], speech[0, :n])[0, 1] > 0.5 or np.abs(y).max() > 0.01


def test_wrong_rate_is_resampled_with_a_notice_or_refused(speech, tmp_path, caplog):
    p = audio.write(tmp_path / "a16k.wav", audio.resample(speech, 24_000, 16_000), 16_000)
    with caplog.at_level(logging.WARNING):
        y, sr = audio.read(p, 24_000)
    assert sr == 24_000 and abs(y.shape[1] - 24_000) <= 2
    assert "resampling 16000 Hz -> 24000 Hz" in caplog.text
    with pytest.raises(AudioError, match="16000 Hz but 24000 Hz is required"):
        audio.read(p, 24_000, allow_resample=False)


def test_stereo_where_mono_is_expected(speech, tmp_path):
    p = audio.write(tmp_path / "st.wav", np.concatenate([speech, 0.5 * speech]), 24_000)
    with pytest.raises(AudioError, match="mono is expected"):
        audio.read(p, channels=1)
    y, _ = audio.read(p, channels=1, mix=True)
    assert y.shape[0] == 1
    np.testing.assert_allclose(y[0], 0.75 * speech[0], atol=1e-3)


def test_mono_where_stereo_is_expected(speech, tmp_path):
    p = audio.write(tmp_path / "mono.wav", speech, 24_000)
    with pytest.raises(AudioError, match="stereo is expected"):
        audio.read(p, channels=2)


def test_empty_corrupt_unsupported_and_missing_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        audio.read(tmp_path / "empty.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    with pytest.raises(AudioError, match="corrupt or truncated"):
        audio.read(tmp_path / "bad.wav")
    (tmp_path / "a.mp3").write_bytes(b"ID3...")
    with pytest.raises(AudioError, match="unsupported format"):
        audio.read(tmp_path / "a.mp3")
    with pytest.raises(AudioError, match="no such file"):
        audio.read(tmp_path / "nothere.wav")


def test_truncated_wav_is_refused_or_read_partially_never_garbage(speech, tmp_path):
    p = audio.write(tmp_path / "t.wav", speech, 24_000)
    data = p.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:30])  # header cut in the middle
    with pytest.raises(AudioError):
        audio.read(tmp_path / "cut.wav")


def test_write_is_atomic_and_rejects_bad_shapes(tmp_path):
    with pytest.raises(AudioError, match="unsupported output format"):
        audio.write(tmp_path / "x.mp3", np.zeros(10, np.float32), 24_000)
    with pytest.raises(AudioError, match=r"\[channels, samples\]"):
        audio.write(tmp_path / "x.wav", np.zeros((1, 2, 3), np.float32), 24_000)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary files left
