"""Checkpoint folders, codebook counts and bad input of the codec."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from fullduplex.codec import Codec, CodecConfig, load_codec, save_codec, tiny_config

FIXTURE = Path(__file__).parent / "assets" / "mimi_tiny.safetensors"


@pytest.fixture(scope="module")
def codec():
    return load_codec(FIXTURE, config=tiny_config())


def test_checkpoint_folder_round_trip(codec, tmp_path):
    save_codec(codec, tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    again = load_codec(tmp_path / "ck")
    assert again.cfg == codec.cfg
    x = 0.1 * torch.randn(1, 1, 3840)
    with torch.no_grad():
        assert torch.equal(again.encode(x), codec.encode(x))


def test_half_precision_checkpoint_keeps_codebooks_exact(codec, tmp_path, sample_wav):
    from safetensors.torch import load_file

    from fullduplex.audio import read

    save_codec(codec, tmp_path / "half", weights_dtype=torch.float16)
    stored = load_file(str(tmp_path / "half" / "model.safetensors"))
    params = dict(codec.named_parameters())
    assert all(v.dtype == (torch.float16 if k in params else codec.state_dict()[k].dtype) for k, v in stored.items())
    half = load_codec(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    for k, v in codec.state_dict().items():
        if k not in params:  # codebook statistics: untouched
            assert torch.equal(half.state_dict()[k], v), k
    wav, _ = read(sample_wav, 24_000, channels=1)  # [1, T]
    x = torch.from_numpy(wav[:, : 24_000 * 2]).float()[None]
    with torch.no_grad():
        a, b = codec.decode(codec.encode(x)), half.decode(half.encode(x))
    assert (half.encode(x) == codec.encode(x)).float().mean() > 0.9  # rounding moves few codes
    assert float((a - b).abs().max()) < 0.5 and float((a - b).pow(2).mean().sqrt()) < 0.1 * float(a.pow(2).mean().sqrt()) + 1e-3


def test_config_dict_round_trip_and_unknown_keys():
    cfg = tiny_config()
    assert CodecConfig.from_dict(cfg.to_dict()) == cfg
    assert CodecConfig.from_kyutai(cfg.to_kyutai()) == cfg
    with pytest.raises(ValueError, match="unknown codec config keys"):
        CodecConfig.from_dict({**cfg.to_dict(), "n_filterz": 3})


def test_weights_that_do_not_fit_the_config_name_the_keys(tmp_path):
    with pytest.raises(ValueError, match=r"shape mismatches: .*decoder.model.0.conv.conv.bias \(64,\) vs \(1024,\)"):
        load_codec(FIXTURE)  # tiny weights, default (released) Mimi config
    with pytest.raises(ValueError, match=r"missing keys \[.(en|de)coder_transformer.transformer.layers.2"):
        load_codec(FIXTURE, config={**tiny_config().to_dict(), "transformer_num_layers": 3})


def test_fewer_codebooks_are_a_prefix(codec):
    x = 0.1 * torch.randn(1, 1, 3840)
    with torch.no_grad():
        full = codec.encode(x)
        codec.set_num_codebooks(3)
        try:
            assert torch.equal(codec.encode(x), full[:, :3])
        finally:
            codec.set_num_codebooks(8)
    with pytest.raises(ValueError, match="num_codebooks"):
        codec.set_num_codebooks(9)


def test_codes_out_of_range_or_wrong_count_are_refused(codec):
    good = torch.zeros(1, 8, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="out of range"):
        codec.decode(good + 64)
    with pytest.raises(ValueError, match="out of range"):
        codec.decode(good - 1)
    with pytest.raises(ValueError, match="codebooks"):
        codec.decode(torch.zeros(1, 9, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[B, K, T\]"):
        codec.decode(torch.zeros(8, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integers"):
        codec.decode(good.float())


def test_streaming_needs_whole_frames(codec):
    with codec.streaming(1), pytest.raises(ValueError, match="multiple of the frame size"):
        codec.encode(torch.zeros(1, 1, 1000))


def test_stereo_tensor_is_refused(codec):
    with pytest.raises(ValueError, match=r"expected audio \[B, 1, T\]"):
        codec.encode(torch.zeros(1, 2, 1920))


def test_codec_is_deterministic_on_silence(codec):
    with torch.no_grad():
        a = codec.encode(torch.zeros(2, 1, 1920 * 3))
        assert torch.equal(a[0], a[1])
        assert np.isfinite(codec.decode(a).numpy()).all()


def test_model_without_transformer_or_resampling():
    cfg = CodecConfig(dimension=16, n_filters=2, ratios=[8, 6, 5, 4, 2], transformer_num_layers=0,
                      codebook_dim=8, n_q=4, bins=16, num_codebooks=4)
    m = Codec(cfg).eval()
    assert m.encoder_transformer is None and m.downsample is None
    with torch.no_grad():
        assert m.decode(m.encode(torch.zeros(1, 1, 1920))).shape == (1, 1, 1920)


def read_audio(path) -> torch.Tensor:
    x, sr = sf.read(path, dtype="float32")
    assert sr == 24_000
    return torch.from_numpy(x)


def _istft_codec(seed=0) -> Codec:
    cfg = tiny_config()
    cfg.decoder, cfg.istft_dim, cfg.istft_blocks = "istft", 16, 2
    torch.manual_seed(seed)
    return Codec(cfg).eval()


def test_istft_decoder_streams_frame_by_frame_as_in_one_call(sample_wav):
    m = _istft_codec()
    wav = read_audio(sample_wav)[None, None, : 1920 * 6].repeat(2, 1, 1)
    with torch.no_grad():
        codes = m.encode(wav)
        whole = m.decode(codes)
        with m.streaming(2):
            parts = [m.decode(codes[..., k:k + 1]) for k in range(codes.shape[-1])]
            # a restarted row decodes as from the start; the other row goes on
            m.reset_streaming(torch.tensor([True, False]))
            again = m.decode(codes[..., :1])
    assert whole.shape == (2, 1, 1920 * 6)
    assert torch.allclose(torch.cat(parts, -1), whole, atol=1e-6)
    assert torch.allclose(again[0], whole[0, :, :1920], atol=1e-6)
    assert not torch.allclose(again[1], whole[1, :, :1920], atol=1e-4)


def test_istft_codec_checkpoint_round_trip_and_no_kyutai_form(tmp_path, sample_wav):
    m = _istft_codec(1)
    wav = read_audio(sample_wav)[None, None, : 1920 * 3]
    save_codec(m, tmp_path / "c")
    back = load_codec(tmp_path / "c")
    assert back.cfg.decoder == "istft"
    with torch.no_grad():
        assert torch.equal(back.decode(back.encode(wav)), m.decode(m.encode(wav)))
    with pytest.raises(ValueError, match="SEANet decoder"):
        m.cfg.to_kyutai()
    with pytest.raises(ValueError, match="decoder must be"):
        CodecConfig(decoder="hifigan")
    with pytest.raises(ValueError, match="istft_hop"):
        CodecConfig(decoder="istft", istft_hop=250)
