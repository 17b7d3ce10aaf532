import json

import numpy as np
import soundfile as sf

from fullduplex.audio import write
from fullduplex.cli import main
from fullduplex.systems.converse import converse, converse_folder
from fullduplex.systems.model import ModelSystem
from fullduplex.systems.registry import EchoSystem

F = 1920


def test_time_alignment_with_the_echo_system():
    """Output sample t is what the system said at t having heard input before t: echo = input one frame later."""
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 5 * F + 700).astype(np.float32)
    out, text, stats = converse(EchoSystem(), x)
    assert out.shape == x.shape  # as long as the input
    assert not out[:F].any()     # the first frame is silence
    np.testing.assert_array_equal(out[F:], x[:-F])
    assert stats["frames"] == 6 and text == []


def test_converse_file_writes_stereo_and_timed_text(tiny_parts, tmp_path, sample_wav):
    out = tmp_path / "out.wav"
    res = converse_file_model(tiny_parts, sample_wav, out)
    y, sr = sf.read(out)
    x, sr_in = sf.read(sample_wav)
    assert sr == 24_000 and y.shape == (len(x), 2)
    np.testing.assert_allclose(y[:, 1], x, atol=1 / 16384)  # right = the user
    assert not y[:F, 0].any()                               # left = the system, silent in frame 0
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["text"] == res["text"]
    for c in doc["chunks"]:
        assert c["start"] >= 0.08 and abs(c["end"] - c["start"] - 0.08) < 1e-6 and c["text"]


def test_tail_appends_silence_the_system_answers_in(tmp_path, sample_wav):
    from fullduplex.cli import main

    out = tmp_path / "echo.wav"
    assert main(["converse", str(sample_wav), "-o", str(out), "--system", "echo", "--tail", "0.5"]) == 0
    y, _ = sf.read(out)
    x, _ = sf.read(sample_wav)
    assert y.shape == (len(x) + 12_000, 2)
    np.testing.assert_allclose(y[: len(x), 1], x, atol=1 / 16384)
    assert not y[len(x):, 1].any()  # right = the user, silent during the tail
    # the echo says sample t - F at t: its last words land in the tail instead of being cut off
    np.testing.assert_allclose(y[F:, 0], y[:-F, 1], atol=1 / 16384)
    assert main(["converse", str(sample_wav), "-o", str(out), "--system", "echo", "--tail", "-1"]) == 2


def converse_file_model(parts, inp, out):
    from fullduplex.systems.converse import converse_file

    return converse_file(ModelSystem(parts, sampling={"seed": 0}), inp, out)


def test_batch_folder_full_duplex_bench_layout(tmp_path):
    for i, sr in enumerate((16_000, 24_000)):
        d = tmp_path / f"item{i}"
        d.mkdir()
        write(d / "input.wav", np.zeros(int(1.3 * sr), np.float32) + 0.01, sr)
    res = converse_folder(EchoSystem(), tmp_path)
    assert len(res) == 2
    for i in range(2):
        y, sr = sf.read(tmp_path / f"item{i}" / "output.wav")
        assert sr == 24_000 and y.ndim == 1 and abs(len(y) / sr - 1.3) < 1e-3  # same duration, mono
        assert (tmp_path / f"item{i}" / "output_text.json").exists()


def test_cli_converse(tmp_path, sample_wav, capsys):
    out = tmp_path / "o.wav"
    assert main(["converse", str(sample_wav), "-o", str(out), "--system", "echo", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["output"] == str(out) and out.exists()
    assert main(["converse", str(sample_wav), "-o", str(out), "--system", "nonsense"]) == 2


def test_converse_many_gives_each_stream_what_converse_gives_it(tiny_parts):
    """Six streams of different lengths (one empty) through a batch of 2 sessions: each session is
    restarted with the next stream when one ends, and every stream comes out as if conversed alone
    (greedy)."""
    from fullduplex.systems.converse import converse_many
    from fullduplex.systems.model import BatchedModelSystem

    greedy = {"use_sampling": False}
    rng = np.random.default_rng(3)
    users = [rng.uniform(-0.3, 0.3, n * F + 300 * n).astype(np.float32) for n in (5, 2, 0, 7, 3, 4)]
    batched = BatchedModelSystem(tiny_parts, 2, sampling=greedy)
    got = dict(converse_many(batched, users))
    assert sorted(got) == list(range(6))
    single = ModelSystem(tiny_parts, sampling=greedy)
    for i, user in enumerate(users):
        audio, text, stats = converse(single, user)
        b_audio, b_text, b_stats = got[i]
        assert b_audio.shape == audio.shape == user.shape
        np.testing.assert_allclose(b_audio, audio, atol=1e-4)
        assert [t["text"] for t in b_text] == [t["text"] for t in text]
        assert [t["start"] for t in b_text] == [t["start"] for t in text]
        assert b_stats["frames"] == stats["frames"] and b_stats["sessions"] == 2 and "sessions" not in stats
