"""The default model bundled in fullduplex/assets/model: a trained codec and duplex LM that run on a CPU."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from fullduplex.audio import read
from fullduplex.codec import load_codec
from fullduplex.systems.build import default_model_path

F = 1920


def test_bundled_codec_is_trained_and_reconstructs_speech(sample_wav):
    """The default codec (load_codec() with no path) turns the bundled sample into intelligible-ish
    speech: STOI 0.67 measured, an untrained codec of the same size gives about 0.5."""
    from pystoi import stoi

    torch.set_num_threads(1)
    codec = load_codec()
    assert (codec.num_codebooks, codec.cardinality, codec.cfg.sample_rate) == (8, 1024, 24_000)
    x, _ = read(sample_wav, sample_rate=24_000, channels=1)
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(x[None]))
        y = codec.decode(codes)[0, 0, : x.shape[1]].numpy()
    assert codes.shape == (1, 8, -(-x.shape[1] // F))
    assert stoi(x[0], y, 24_000) > 0.6


@pytest.mark.slow  # rebuilds SmolLM2-135M from its wheel and quantizes it (about 30 s)
def test_default_model_converses(sample_wav, tmp_path, capsys):
    """The README's main command: the sample in, a stereo conversation and the system's text out."""
    from fullduplex.cli import main

    meta = json.loads((default_model_path() / "system.json").read_text())
    assert meta["int8"] is True
    out = tmp_path / "conversation.wav"
    assert main(["converse", str(sample_wav), "-o", str(out), "--tail", "2", "--threads", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    y, sr = sf.read(out)
    x, _ = sf.read(sample_wav)
    assert sr == 24_000 and y.shape == (len(x) + 48_000, 2)
    np.testing.assert_allclose(y[: len(x), 1], x, atol=1 / 16384)  # right: the user
    assert not y[:F, 0].any() and np.abs(y[F:, 0]).max() > 0.01       # left: the model speaks
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["text"] == res["text"] and isinstance(res["text"], str)
    assert res["frames"] == -(-(len(x) + 48_000) // F)
