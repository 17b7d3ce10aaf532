"""`fullduplex codec encode|decode|roundtrip` on the bundled sample, and their errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from fullduplex import audio
from fullduplex.cli import main

CKPT = str(Path(__file__).parent / "assets" / "mimi_tiny.safetensors")


def _tiny_folder(tmp_path) -> str:
    from fullduplex.codec import load_codec, save_codec, tiny_config

    return str(save_codec(load_codec(CKPT, config=tiny_config()), tmp_path / "tiny"))


def test_encode_decode_roundtrip(sample_wav, tmp_path, capsys):
    ck = _tiny_folder(tmp_path)
    codes, out, rt = tmp_path / "c.npz", tmp_path / "d.wav", tmp_path / "rt.wav"
    assert main(["codec", "encode", str(sample_wav), "-o", str(codes), "--checkpoint", ck]) == 0
    with np.load(codes) as z:
        assert z["codes"].shape == (1, 8, 75) and int(z["num_samples"]) == 142_224
    assert main(["codec", "decode", str(codes), "-o", str(out), "--checkpoint", ck, "--num-codebooks", "4"]) == 0
    y, sr = audio.read(out)
    assert sr == 24_000 and y.shape == (1, 142_224)
    assert main(["codec", "roundtrip", str(sample_wav), "-o", str(rt), "--checkpoint", ck, "--streaming"]) == 0
    z, _ = audio.read(rt)
    assert z.shape == (1, 142_224)
    assert "8 codebooks" in capsys.readouterr().out


def test_cli_errors_are_clear_and_exit_2(sample_wav, tmp_path, capsys):
    ck = _tiny_folder(tmp_path)
    stereo = audio.write(tmp_path / "st.wav", np.zeros((2, 4800), np.float32), 24_000)
    bad = tmp_path / "bad.npz"
    np.savez(bad, codes=np.full((8, 3), 999, np.int16))
    cases = [
        (["codec", "roundtrip", str(tmp_path / "none.wav"), "-o", str(tmp_path / "o.wav")], "no such file"),
        (["codec", "decode", str(bad), "-o", str(tmp_path / "o.wav"), "--checkpoint", ck], "out of range"),
        (["codec", "encode", str(sample_wav), "-o", str(tmp_path / "c.npz"), "--checkpoint", ck,
          "--num-codebooks", "9"], "num-codebooks"),
        (["codec", "encode", str(sample_wav), "-o", str(tmp_path / "c.npz"), "--checkpoint", CKPT], "shape mismatches"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        assert msg in capsys.readouterr().err, argv
    # stereo input is encoded per channel (a codes row per channel), or downmixed with --mix
    assert main(["codec", "encode", str(stereo), "-o", str(tmp_path / "s.npz"), "--checkpoint", ck]) == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["codes"].shape[0] == 2
    assert main(["codec", "encode", str(stereo), "-o", str(tmp_path / "m.npz"), "--checkpoint", ck, "--mix"]) == 0
    with np.load(tmp_path / "m.npz") as z:
        assert z["codes"].shape[0] == 1


def test_bench_codec_times_our_decoders_against_the_moshi_package(capsys):
    pytest.importorskip("moshi")
    assert main(["bench", "codec", "--config", "tiny", "--frames", "2", "--repeats", "1", "--threads", "1", "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["decoder"] == "seanet" and same["max_abs_diff"] < 1e-4  # the same Mimi, the same samples
    assert main(["bench", "codec", "--config", "tiny", "--decoder", "istft", "--frames", "2", "--repeats", "1",
                 "--threads", "1", "--json"]) == 0
    istft = json.loads(capsys.readouterr().out)
    assert istft["decoder"] == "istft" and "max_abs_diff" not in istft and istft["speedup"] > 0
    assert istft["parameters"] != same["parameters"]
