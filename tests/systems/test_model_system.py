import numpy as np
import pytest
import torch

from fullduplex.systems import BatchedDuplexSystem, DuplexSystem
from fullduplex.systems.build import default_model_path, load_parts, random_parts, save_parts
from fullduplex.lm.generate import sampling_settings
from fullduplex.systems.model import BatchedModelSystem, ModelSystem
from fullduplex.systems.registry import EchoSystem, make_batched_system, make_system, split_settings

F = 1920


def _noise(n, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal((n, F))).astype(np.float32)


def test_interfaces(tiny_parts):
    assert isinstance(ModelSystem(tiny_parts), DuplexSystem)
    assert isinstance(BatchedModelSystem(tiny_parts, 2), BatchedDuplexSystem)
    assert isinstance(EchoSystem(), DuplexSystem)


def test_first_frame_is_silence_then_audio_frames(tiny_parts):
    s = ModelSystem(tiny_parts, sampling={"seed": 0})
    s.reset()
    x = _noise(6)
    frames = [s.step(x[k]) for k in range(6)]
    assert all(f.audio.shape == (F,) and f.audio.dtype == np.float32 for f in frames)
    assert not frames[0].audio.any() and frames[0].text == ""  # Moshi's first step returns nothing
    assert any(f.audio.any() for f in frames[1:])
    assert all(np.isfinite(f.audio).all() for f in frames)
    assert all(isinstance(f.text, str) for f in frames)


def test_wrong_shapes_are_explicit_errors(tiny_parts):
    s = BatchedModelSystem(tiny_parts, 2)
    with pytest.raises(ValueError, match=r"\[2, 1920\]"):
        s.step(np.zeros((1, F), np.float32))
    with pytest.raises(IndexError):
        s.reset(5)
    with pytest.raises(ValueError, match="unknown sampling"):
        sampling_settings({"temperature": 1.0})


def test_resetting_one_session_leaves_the_others_alone(tiny_parts):
    """Session 0's output is identical whether or not session 1 restarts midway."""
    x = np.stack([_noise(10, 1), _noise(10, 2)], axis=1)  # [T, B, F]
    outs = []
    for reset_at in (None, 4):
        s = BatchedModelSystem(tiny_parts, 2, sampling={"seed": 7})
        s.reset()
        rows = []
        for t in range(10):
            if t == reset_at:
                s.reset(1)
            fr = s.step(x[t])
            rows.append((fr[0].audio, fr[0].info["token"], fr[1].audio))
        outs.append(rows)
    for (a0, t0, _), (b0, u0, _) in zip(*outs):
        np.testing.assert_allclose(a0, b0, atol=1e-5)
        assert t0 == u0
    assert not outs[1][4][2].any()  # the restarted session's first frame is silence again


def test_batched_matches_single_session_greedy(tiny_parts):
    greedy = {"use_sampling": False}
    single = ModelSystem(tiny_parts, sampling=greedy)
    batched = BatchedModelSystem(tiny_parts, 3, sampling=greedy)
    single.reset(), batched.reset()
    x = _noise(6, 3)
    for t in range(6):
        a = single.step(x[t])
        b = batched.step(np.stack([x[t], _noise(1, 10 + t)[0], x[t]]), active=[True, True, True])
        np.testing.assert_allclose(a.audio, b[0].audio, atol=1e-4)
        np.testing.assert_allclose(b[0].audio, b[2].audio, atol=1e-5)
        assert a.text == b[0].text == b[2].text


def test_checkpoint_folder_roundtrip(tiny_parts, tmp_path):
    greedy = {"use_sampling": False}
    tiny_parts.sampling = {"temp": 0.6}
    save_parts(tiny_parts, tmp_path / "sys")
    tiny_parts.sampling = {}
    loaded = load_parts(tmp_path / "sys")
    assert loaded.sampling == {"temp": 0.6} and loaded.tokenizer is not None
    a, b = ModelSystem(tiny_parts, sampling=greedy), ModelSystem(loaded, sampling=greedy)
    a.reset(), b.reset()
    for x in _noise(4, 5):
        fa, fb = a.step(x), b.step(x)
        np.testing.assert_allclose(fa.audio, fb.audio, atol=1e-5)
        assert fa.text == fb.text
    with pytest.raises(FileNotFoundError, match="codec/ and lm/"):
        load_parts(tmp_path)
    assert isinstance(make_system(str(tmp_path / "sys")), ModelSystem)  # a folder works as --system too


def test_sampling_settings_in_a_system_name(tiny_parts, tmp_path):
    """`--system FOLDER?key=value&...` runs that model with those settings over the caller's."""
    save_parts(tiny_parts, tmp_path / "sys")
    name = str(tmp_path / "sys")
    s = make_system(f"{name}?padding_bonus=-1.5&top_k_text=5&use_sampling=false", sampling={"temp": 0.5, "top_k_text": 9})
    assert s.batched.row_sampling(0) == dict(sampling_settings(), temp=0.5, top_k_text=5, padding_bonus=-1.5,
                                             use_sampling=False)
    b = make_batched_system(f"{name}?seed=3", 2)
    assert b.row_sampling(1)["seed"] == 3 and b.row_sampling(1)["padding_bonus"] == 0.0
    assert split_settings("ws://host:8998/api/chat?text_temperature=0.5") == ("ws://host:8998/api/chat?text_temperature=0.5", {})
    for bad, match in [(f"{name}?padding=1", "not KEY=VALUE"), (f"{name}?top_k=2.5", "top_k='2.5' is not an integer"),
                       (f"{name}?use_sampling=maybe", "true or false"), ("cascade?temp=1", "model systems"),
                       (f"{name}?padding_bonus=11", "padding_bonus must be")]:
        with pytest.raises(ValueError, match=match):
            make_system(bad)


def test_pack_writes_a_compact_system_that_runs(tiny_parts, tmp_path, capsys):
    """`fullduplex pack`: a trained codec folder + an LM adapter folder -> one small system folder."""
    import copy
    import json

    from fullduplex.cli import main
    from fullduplex.codec import save_codec
    from fullduplex.lm.loading import save_lora_checkpoint
    from fullduplex.lm.lora import add_lora

    save_codec(tiny_parts.codec, tmp_path / "codec")
    lm = copy.deepcopy(tiny_parts.lm)
    add_lora(lm.transformer, rank=2, scaling=1.0)
    with torch.no_grad():  # trained adapters: not zero
        for name, p in lm.named_parameters():
            if name.endswith(".lora_B"):
                p.copy_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    save_lora_checkpoint(lm, tmp_path / "lm", base="config", rank=2, scaling=1.0,
                         base_overrides=tiny_parts.lm.cfg.to_dict(), tokenizer=tiny_parts.tokenizer, dtype="float32")
    exact = tmp_path / "exact"
    assert main(["pack", "--codec", str(tmp_path / "codec"), "--lm", str(tmp_path / "lm"), "-o", str(exact),
                 "--codec-dtype", "float32", "--lm-dtype", "float32", "--tokenizer", "--float-runtime"]) == 0
    small = tmp_path / "small"
    assert main(["pack", "--codec", str(tmp_path / "codec"), "--lm", str(tmp_path / "lm"), "-o", str(small),
                 "--tokenizer", "--sampling", "padding_bonus=-0.5", "--sampling", "top_k_text=20"]) == 0
    assert json.loads((small / "system.json").read_text()) == {
        "sampling": {"padding_bonus": -0.5, "top_k_text": 20}, "int8": True}
    assert ModelSystem(load_parts(small)).batched.row_sampling(0)["padding_bonus"] == -0.5
    size = {k: (f / "codec" / "model.safetensors").stat().st_size + (f / "lm" / "lora.safetensors").stat().st_size
            for k, f in (("exact", exact), ("small", small))}
    assert size["small"] < 0.6 * size["exact"]
    greedy = {"use_sampling": False}
    merged = copy.deepcopy(tiny_parts)
    from fullduplex.lm.lora import merge_lora

    merge_lora(lm.transformer)
    merged.lm = lm.eval()
    a, b, c = (ModelSystem(p, sampling=greedy) for p in (merged, load_parts(exact), load_parts(small)))
    for s in (a, b, c):
        s.reset()
    for x in _noise(4, 6):
        fa, fb, fc = a.step(x), b.step(x), c.step(x)
        np.testing.assert_allclose(fa.audio, fb.audio, atol=1e-5)  # float32 storage: the same system
        assert fc.audio.shape == fa.audio.shape and np.isfinite(fc.audio).all()
    capsys.readouterr()
    assert main(["pack", "--codec", str(tmp_path / "codec"), "--lm", str(tmp_path / "lm"), "-o", str(tmp_path / "lm")]) == 2
    assert "new folder" in capsys.readouterr().err
    for bad, match in (("padding_bonus=20", "padding_bonus must be"), ("warmth=1", "not KEY=VALUE")):
        assert main(["pack", "--codec", str(tmp_path / "codec"), "--lm", str(tmp_path / "lm"),
                     "-o", str(tmp_path / "bad"), "--sampling", bad]) == 2
        assert match in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert (tmp_path / "lm" / "lora.safetensors").exists()  # the input is untouched


def test_system_json_int8_quantizes_the_lm(tiny_parts, tmp_path):
    import json

    save_parts(tiny_parts, tmp_path / "sys")
    sys_json = tmp_path / "sys" / "system.json"
    assert json.loads(sys_json.read_text())["int8"] is False
    sys_json.write_text(json.dumps({"sampling": {}, "int8": True}))
    loaded = load_parts(tmp_path / "sys")
    assert loaded.int8
    lm = ModelSystem(loaded).batched.lm
    kinds = {type(m).__name__ for m in lm.modules()}
    assert "Linear" in kinds and any(m.__module__.startswith("torch.ao.nn.quantized") for m in lm.modules())
    assert not any(m.__module__.startswith("torch.ao.nn.quantized") for m in loaded.lm.modules())  # a copy
    sys_json.write_text(json.dumps({"int8": "yes"}))
    with pytest.raises(ValueError, match="int8 must be true or false"):
        load_parts(tmp_path / "sys")


def test_default_system_without_its_folder_says_what_to_do(tmp_path, monkeypatch):
    import fullduplex.systems.build as build

    monkeypatch.setattr(build, "default_model_path", lambda: tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="no default duplex model is bundled in"):
        make_system("default")


@pytest.mark.slow
def test_default_size_model_steps():
    """The untrained model of the default's intended size: SmolLM2-135M's temporal shape, small codec."""
    torch.set_num_threads(1)
    parts = random_parts("default")
    c = parts.lm.cfg
    assert (c.dim, c.num_layers, c.num_heads, c.kv_repeat, c.dep_q) == (576, 30, 9, 3, 8)
    assert parts.codec.cardinality == c.card
    s = BatchedModelSystem(parts, 2, int8=True)
    s.reset()
    frames = [s.step(_noise(2, t)) for t in range(3)]
    assert all(f.audio.shape == (F,) for fr in frames for f in fr)
    assert any(f.audio.any() for f in frames[-1])
