"""Codec training crops: from a folder of speech files, and read ahead by worker threads."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from fullduplex.train.codec_data import SpeechCrops, speech_channels
from fullduplex.train.loop import train

from train_helpers import codec_cfg


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory, sample_wav):
    """The bundled speech sample cut into pieces: two speaker folders (one with a nested folder and a
    stereo file), and one file at the top."""
    x, sr = sf.read(str(sample_wav), dtype="float32")
    root = tmp_path_factory.mktemp("speech")
    n = len(x) // 4
    (root / "alice" / "book1").mkdir(parents=True)
    (root / "bob").mkdir()
    sf.write(str(root / "alice" / "book1" / "a.flac"), x[:n], sr)
    sf.write(str(root / "alice" / "b.wav"), x[n:2 * n], sr)
    sf.write(str(root / "bob" / "c.wav"), np.stack([x[2 * n:3 * n], 0.5 * x[2 * n:3 * n]], 1), sr)
    sf.write(str(root / "carol.ogg"), x[3 * n:], sr)
    (root / "notes.txt").write_text("not audio")
    (root / "bob" / ".d.wav.tmp99.wav").write_bytes(b"RIFF")  # left by an interrupted write
    return root


def test_a_folder_of_speech_files_gives_one_source_per_channel_named_by_its_first_folder(speech_folder):
    chans = speech_channels(speech_folder)
    got = sorted((c.path.name, c.channel, c.voice) for c in chans)
    assert got == [("a.flac", 0, "alice"), ("b.wav", 0, "alice"), ("c.wav", 0, "bob"), ("c.wav", 1, "bob"),
                   ("carol.ogg", 0, "carol")]
    assert {c.voice for c in speech_channels(speech_folder, exclude_voices={"alice"})} == {"bob", "carol"}
    assert {c.voice for c in speech_channels(speech_folder, include_voices={"bob"})} == {"bob"}


def test_folder_crops_are_the_files_samples_drawn_by_seed_and_step(speech_folder):
    data = SpeechCrops(speech_folder, 6, 0.4, seed=3, holdout_voices=["carol"])
    assert data.voices == ["alice", "bob"]
    length = data.length
    assert length == 5 * 1920  # 0.4 s: five 80 ms frames
    # weights follow length: the stereo file's two channels each weigh as much as a mono file of its length
    frames = np.array([c.frames for c in data.channels], dtype=float)
    assert np.allclose(data.weights, frames / frames.sum())
    batch = data.batch(5)
    assert batch.shape == (6, 1, length)
    for (i, start), crop in zip(data.plan(5), batch[:, 0].numpy()):
        c = data.channels[i]
        assert 0 <= start <= c.frames - length
        x, _ = sf.read(str(c.path), dtype="float32", always_2d=True)
        assert np.allclose(crop, x[start:start + length, c.channel], atol=1e-4)
    assert torch.equal(batch, SpeechCrops(speech_folder, 6, 0.4, seed=3, holdout_voices=["carol"]).batch(5))
    assert not torch.equal(batch, data.batch(6))
    assert float(batch.abs().mean()) > 0.01  # speech, not padding


def test_workers_read_ahead_the_same_crops_across_jumps_and_ranks(speech_folder, dataset):
    for root in (speech_folder, dataset):
        plain = SpeechCrops(root, 4, 0.24, seed=1)
        ahead = SpeechCrops(root, 4, 0.24, seed=1, workers=3)
        for step in (0, 1, 2, 9, 10, 4):  # a jump forward (resume) and back
            assert torch.equal(plain.batch(step), ahead.batch(step)), step
        assert set(k[0] for k in ahead._ahead) == {5, 6, 7}
        for rank in (0, 1):
            assert torch.equal(plain.batch(3, rank, 2), ahead.batch(3, rank, 2))


def test_bad_folders_are_refused_with_what_to_do(tmp_path, sample_wav):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        speech_channels(tmp_path / "missing")
    x, sr = sf.read(str(sample_wav), dtype="float32")
    (tmp_path / "slow").mkdir()
    sf.write(str(tmp_path / "slow" / "a.wav"), x[::3], sr // 3)
    with pytest.raises(ValueError, match="8000 Hz.*resample"):
        speech_channels(tmp_path)
    (tmp_path / "slow" / "a.wav").unlink()
    (tmp_path / "slow" / "b.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(ValueError, match="b.wav: not a readable audio file"):
        speech_channels(tmp_path)
    (tmp_path / "slow" / "b.wav").unlink()
    with pytest.raises(ValueError, match="no speech channels left"):
        SpeechCrops(tmp_path, 2, 0.24, 0)


def test_a_codec_trains_on_a_folder_of_speech(tmp_path, speech_folder):
    cfg = codec_cfg(tmp_path / "run", speech_folder, steps=2, ckpt_every=100,
                    **{"codec.adversarial": False, "codec.holdout_voices": ["carol"]})
    assert cfg.codec.data_workers > 0
    assert train(cfg)["finished"]
    meta = json.loads((tmp_path / "run" / "final" / "TRAINING.json").read_text())
    assert meta["train_voices"] == ["alice", "bob"] and meta["holdout_voices"] == ["carol"]


def test_data_speech_cuts_each_voices_words_from_conversations_into_a_folder_codec_training_reads(
        tmp_path, dataset, capsys):
    from fullduplex.cli import main
    from fullduplex.data.format import CHANNEL, read_item, read_manifest
    from fullduplex.data.speech import speech_stretches

    out = tmp_path / "speech"
    assert main(["data", "speech", str(dataset), "--out", str(out), "--format", "wav",
                 "--exclude-voice", "voice-c"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["voices"]) == {"voice-a", "voice-b"} and summary["items_read"] == 2

    # voice-b speaks item 0's right channel only: its file is those stretches, 0.2 s of silence between
    entry = read_manifest(dataset)[0]
    item = read_item(dataset, entry["path"])
    assert item.meta["voices"]["SPEAKER_OTHER"] == "voice-b"
    words = [se for _, se, spk in item.alignments if spk == "SPEAKER_OTHER"]
    stretches = speech_stretches(words, 0.4, 0.15, item.duration)
    assert len(stretches) == len(words)  # words 0.8 s apart: one stretch each
    gap = np.zeros(int(0.2 * 24000), np.float32)
    parts = [item.audio[CHANNEL["SPEAKER_OTHER"], int(a * 24000):int(b * 24000)] for a, b in stretches]
    expected = np.concatenate([z for p in parts for z in (p, gap)][:-1])
    (f,) = sorted((out / "voice-b").iterdir())
    got, sr = sf.read(str(f), dtype="float32")
    assert sr == 24000 and got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3  # 16-bit PCM
    assert summary["voices"]["voice-b"]["minutes"] == pytest.approx(sum(b - a for a, b in stretches) / 60, abs=0.01)

    crops = SpeechCrops(out, 2, 0.24, 0)
    assert crops.voices == ["voice-a", "voice-b"]
    assert main(["data", "speech", str(dataset), "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err
    capped = main(["data", "speech", str(dataset), "--out", str(tmp_path / "capped"), "--minutes-per-voice", "0.02"])
    assert capped == 0
    short = json.loads(capsys.readouterr().out)["voices"]
    assert all(0.02 <= v["minutes"] < summary["voices"]["voice-a"]["minutes"] for v in short.values())
