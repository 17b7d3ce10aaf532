import numpy as np
import pytest

from fullduplex.eval import codec_metrics as cm


def _speechlike(sr=16000, s=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * s)) / sr
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (env * (np.sin(2 * np.pi * 150 * t) + 0.3 * rng.standard_normal(len(t)))).astype(np.float32) * 0.2


def test_si_sdr_scale_invariant_and_noise():
    x = _speechlike()
    assert cm.si_sdr(x, 0.5 * x) > 60
    noisy = x + 0.1 * np.std(x) * np.random.default_rng(1).standard_normal(len(x)).astype(np.float32)
    assert cm.si_sdr(x, noisy) == pytest.approx(20.0, abs=0.5)


def test_mel_distance_zero_on_identity_and_grows():
    x = _speechlike(24000)
    assert cm.mel_distance(x, x, 24000) == 0.0
    assert cm.mel_distance(x, 0.5 * x, 24000) < cm.mel_distance(x, np.zeros_like(x), 24000)


def test_stoi_pesq_identity():
    pytest.importorskip("pystoi")
    pytest.importorskip("pesq")
    x = _speechlike()
    assert cm.stoi(x, x, 16000) > 0.99
    p = cm.pesq(x, x, 16000, "wb")
    assert p is None or p > 4.0


@pytest.mark.slow
def test_eval_codec_on_a_data_folder(tmp_path, sample_wav):
    """`eval codec` on one file with the bundled codec: every metric present for each count."""
    pytest.importorskip("pystoi")
    pytest.importorskip("pesq")
    import shutil

    from fullduplex.eval.codec_eval import evaluate_codec, format_table

    shutil.copy(sample_wav, tmp_path / "a.wav")
    res = evaluate_codec(None, str(tmp_path), [1, 2])
    assert [r["codebooks"] for r in res["rows"]] == [1, 2]
    for r in res["rows"]:
        assert r["STOI"] is not None and r["mel_distance"] > 0 and r["WER"] is not None
    assert "Mimi" in format_table(res)
