"""Equivalence with Kyutai's reference implementation (the `moshi` package) on stored weights."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fullduplex import audio
from fullduplex.codec import Codec, load_codec, mimi_config, tiny_config
from fullduplex.nn import fast

loaders = pytest.importorskip("moshi.models.loaders")

FIXTURE = Path(__file__).parent / "assets" / "mimi_tiny.safetensors"
FRAME = 1920


@pytest.fixture(scope="module")
def reference():
    return loaders.get_mimi(str(FIXTURE), tiny_config().to_kyutai(), num_codebooks=8).eval()


@pytest.fixture(scope="module")
def ours():
    return load_codec(FIXTURE, config=tiny_config())


@pytest.fixture(scope="module")
def speech(sample_wav):
    x, sr = audio.read(sample_wav, 24_000, channels=1)
    assert sr == 24_000
    return torch.from_numpy(x[:, : 25 * FRAME])[None]  # [1, 1, 2 s]


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
def kernels(request):
    fast.set_enabled(request.param)
    yield
    fast.set_enabled(True)


def test_batch_codes_and_audio_match_reference(reference, ours, speech, kernels):
    with torch.no_grad():
        ref_codes, our_codes = reference.encode(speech), ours.encode(speech)
        assert our_codes.shape == (1, 8, 25)
        assert torch.equal(our_codes, ref_codes)
        assert len(torch.unique(our_codes)) > 20  # codes follow the input, not a constant
        ref_wav, our_wav = reference.decode(ref_codes), ours.decode(our_codes)
    assert our_wav.shape == (1, 1, 25 * FRAME)
    assert (our_wav - ref_wav).abs().max() <= 1e-4
    assert our_wav.abs().max() > 1e-3


def test_streaming_frame_by_frame_matches_reference_and_batch(reference, ours, speech, kernels):
    with torch.no_grad():
        batch_codes = ours.encode(speech)
        batch_wav = ours.decode(batch_codes)
        codes, wavs, ref_codes, ref_wavs = [], [], [], []
        with ours.streaming(1), reference.streaming(1):
            for i in range(25):
                frame = speech[..., i * FRAME:(i + 1) * FRAME]
                codes.append(ours.encode(frame))
                ref_codes.append(reference.encode(frame))
                wavs.append(ours.decode(codes[-1]))
                ref_wavs.append(reference.decode(ref_codes[-1]))
    codes, ref_codes = torch.cat(codes, -1), torch.cat(ref_codes, -1)
    assert torch.equal(codes, ref_codes)
    assert torch.equal(codes, batch_codes)
    wav = torch.cat(wavs, -1)
    assert (wav - torch.cat(ref_wavs, -1)).abs().max() <= 1e-4
    assert (wav - batch_wav).abs().max() <= 1e-4


def test_batch_pads_partial_frames_like_reference(reference, ours, speech):
    x = speech[..., : FRAME + 1]  # one sample into the second frame
    with torch.no_grad():
        assert torch.equal(ours.encode(x), reference.encode(x))
    assert ours.encode(x).shape[-1] == 2


def test_legacy_key_names_load_to_the_same_weights(ours):
    state = load_file(str(FIXTURE))
    legacy = {}
    for k, v in state.items():
        if ".self_attn.in_projs.0.weight" in k:
            legacy[k.replace("in_projs.0.weight", "in_proj_weight")] = v
        elif ".self_attn.out_projs.0.weight" in k:
            legacy[k.replace("out_projs.0.weight", "out_proj.weight")] = v
        elif k.endswith("_codebook.embedding_sum"):
            legacy[k.replace("embedding_sum", "embed_avg")] = v
        elif k.endswith("_codebook.cluster_usage"):
            legacy[k.replace("cluster_usage", "cluster_size")] = v
        else:
            legacy[k] = v
    assert any("in_proj_weight" in k for k in legacy) and any("embed_avg" in k for k in legacy)
    from fullduplex.codec.weights import load_state

    other = load_state(Codec(tiny_config()), legacy, "legacy")
    for k, v in ours.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k


def test_released_mimi_config_matches_reference_keys_and_shapes():
    ref_state = loaders.get_mimi(None, mimi_config().to_kyutai(), num_codebooks=8).state_dict()
    ours = Codec(mimi_config()).eval()
    state = ours.state_dict()
    assert set(state) == set(ref_state)
    for k, v in ref_state.items():
        assert state[k].shape == v.shape, k
    assert ours.num_parameters() == 79_308_609
    assert ours.frame_size == 1920 and ours.num_codebooks == 8 and ours.total_codebooks == 32
    x = 0.1 * torch.randn(1, 1, 2 * FRAME)
    with torch.no_grad():
        codes = ours.encode(x)
        assert codes.shape == (1, 8, 2)
        assert ours.decode(codes).shape == (1, 1, 2 * FRAME)
        with ours.streaming(1):
            y = ours.decode(ours.encode(x[..., :FRAME]))
        assert y.shape == (1, 1, FRAME) and np.isfinite(y.numpy()).all()
