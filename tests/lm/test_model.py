"""Config, loading (Kyutai weights, fused names, our checkpoint folders), bad input, textless mode, loss."""
import json

import pytest
import torch
from safetensors.torch import save_file

from fullduplex.lm import LMConfig, LMGen, LMModel, load_checkpoint, load_kyutai, save_checkpoint
from fullduplex.lm.loss import lm_loss


def test_config_from_dict_defaults_and_errors(small):
    cfg, _, _, _ = small
    c = LMConfig.from_dict(cfg)
    assert c.num_codebooks == 17 and c.max_delay == 1 and c.depformer_num_heads == 2
    assert LMConfig.from_dict({"delays": [0] * 9}).card == 1024  # Kyutai's LMModel defaults
    assert LMConfig.from_dict({**cfg, "model_type": "moshi", "depformer_causal": True}).dim == 64
    with pytest.raises(ValueError, match="unknown LM config keys.*'dimm'"):
        LMConfig.from_dict({**cfg, "dimm": 3})
    with pytest.raises(ValueError, match="delays has 3 entries, expected 17"):
        LMConfig.from_dict({**cfg, "delays": [0, 0, 0]})
    with pytest.raises(ValueError, match="not supported"):
        LMConfig.from_dict({**cfg, "demux_second_text_stream": True})
    assert LMConfig.from_dict(c.to_dict()) == c


def test_wrong_streams_and_out_of_range_codes(ours, small):
    _, _, codes, _ = small
    with pytest.raises(ValueError, match=r"\[B, 17, T\]"):
        ours(codes[:, :16])
    bad = codes.clone()
    bad[0, 3, 5] = 64
    with pytest.raises(ValueError, match="stream 3 holds 64"):
        ours(bad)
    bad = codes.clone()
    bad[0, 0, 2] = 100
    with pytest.raises(ValueError, match="stream 0 holds 100, outside \\[0, 100\\)"):
        ours(bad)
    with pytest.raises(TypeError, match="integer"):
        ours(codes.float())


def test_load_kyutai_from_file_with_fused_legacy_names(tmp_path, small, ours):
    cfg, sd, codes, _ = small
    fused = {k: v for k, v in sd.items() if ".self_attn.in_projs." not in k and ".self_attn.out_projs." not in k}
    for prefix, n in [(f"transformer.layers.{i}.self_attn.", 1) for i in range(2)] + \
                     [(f"depformer.layers.{i}.self_attn.", 8) for i in range(2)]:
        fused[prefix + "in_proj_weight"] = torch.cat([sd[f"{prefix}in_projs.{j}.weight"] for j in range(n)])
        fused[prefix + "out_proj.weight"] = torch.cat([sd[f"{prefix}out_projs.{j}.weight"] for j in range(n)])
    save_file(fused, str(tmp_path / "legacy.safetensors"))
    model = load_kyutai(tmp_path / "legacy.safetensors", cfg)
    with torch.no_grad():
        assert torch.equal(model(codes).logits.nan_to_num(), ours(codes).logits.nan_to_num())


def test_mismatched_weights_name_the_keys(small):
    cfg, sd, _, _ = small
    with pytest.raises(ValueError, match=r"mismatched keys: depformer_in.0.weight: \(32, 64\) in weights, \(32, 32\) in config"):
        load_kyutai(sd, {**cfg, "dim": 32})
    with pytest.raises(ValueError, match="unexpected keys: transformer.layers.1"):
        load_kyutai(sd, {**cfg, "num_layers": 1})
    partial = {k: v for k, v in sd.items() if k != "linears.7.weight"}
    with pytest.raises(ValueError, match="missing keys: linears.7.weight"):
        load_kyutai(partial, cfg)


def test_checkpoint_folder_round_trip_and_mismatch(tmp_path, ours, small):
    _, _, codes, _ = small
    save_checkpoint(ours, tmp_path / "ckpt")
    model, tok = load_checkpoint(tmp_path / "ckpt")
    assert tok is None
    from tokenizers import Tokenizer, models

    from fullduplex.lm.text import TextTokenizer
    chars = TextTokenizer(hf=Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(" abc")}, merges=[])))
    save_checkpoint(ours, tmp_path / "ckpt2", tokenizer=chars)
    _, tok = load_checkpoint(tmp_path / "ckpt2")
    assert tok.encode(" cab") == [0, 3, 1, 2]
    with torch.no_grad():
        assert torch.equal(model(codes).text_logits.nan_to_num(), ours(codes).text_logits.nan_to_num())
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    cfg["depformer_dim"] = 48
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"mismatched keys: depformer.layers.0.gating.0.linear_in.weight: \(176, 32\) in weights"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_checkpoint(tmp_path / "nowhere")


def test_loss_weights_padding_and_first_codebook(ours, small):
    _, _, codes, _ = small
    out = ours(codes)
    base = lm_loss(ours, codes, out, text_padding_weight=1.0)
    assert torch.isfinite(base.total) and base.total == base.text + base.audio
    # with every text target a PAD, its weight cancels in the normalisation
    padded = codes.clone()
    padded[:, 0, :20] = 3
    out_p = ours(padded)
    a = lm_loss(ours, padded, out_p, text_padding_weight=0.5).text
    b = lm_loss(ours, padded, out_p, text_padding_weight=1.0).text
    assert torch.allclose(a, b)
    # the semantic weight moves the audio loss towards codebook 0's own loss
    from fullduplex.lm.loss import weighted_cross_entropy
    cb0 = weighted_cross_entropy(out.logits[:, :1], codes[:, 1:2], out.mask[:, :1].float())
    heavy = lm_loss(ours, codes, out, first_codebook_weight=1e6).audio
    assert torch.allclose(heavy, cb0, rtol=1e-4)


def test_textless_model_trains_and_generates():
    cfg = LMConfig(textless=True, n_q=4, dep_q=2, card=32, dim=32, num_heads=2, num_layers=2, context=20,
                   gating="silu", norm="rms_norm_f32", positional_embedding="rope", delays=[0, 1, 0, 1],
                   depformer_dim=16, depformer_num_heads=2, depformer_num_layers=1, depformer_pos_emb="none")
    torch.manual_seed(0)
    model = LMModel(cfg)
    codes = torch.randint(0, 32, (2, 4, 10))
    out = model(codes)
    assert out.text_logits is None and out.logits.shape == (2, 2, 10, 32)
    assert torch.isfinite(lm_loss(model, codes, out).total)
    gen = LMGen(model.eval(), use_sampling=False)
    with gen.streaming(2):
        assert gen.step(codes[:, 2:, :1]) is None
        assert gen.step(codes[:, 2:, 1:2]).shape == (2, 2, 1)


VARIANTS = {
    "sin": {"positional_embedding": "sin", "depformer_pos_emb": "sin"},
    "sin_rope": {"positional_embedding": "sin_rope", "depformer_pos_emb": "sin_rope"},
    "schedule_lowrank": {"depformer_weights_per_step_schedule": [0, 1, 2, 3, 3, 3, 3, 3],
                         "depformer_low_rank_embeddings": 16},
    "layer_scale_gqa_norm": {"layer_scale": 0.1, "kv_repeat": 2, "depformer_norm": "layer_norm",
                             "depformer_multi_linear": False},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_architecture_options_match_moshi(variant, small):
    """Kyutai's other options ('sin' positions, weight schedules, low-rank embeddings, ...) against moshi,
    teacher-forced and streaming."""
    loaders = pytest.importorskip("moshi.models.loaders")
    from moshi.models import LMGen as RefGen

    cfg, _, codes, user = small
    cfg = {**cfg, **VARIANTS[variant]}
    torch.manual_seed(3)
    ref = loaders.get_moshi_lm(None, lm_kwargs=cfg, device="cpu", dtype=torch.float32).eval()
    model = load_kyutai(ref.state_dict(), cfg)
    with torch.no_grad():
        a, b = model(codes), ref(codes)
        assert torch.allclose(a.logits.nan_to_num(), b.logits.nan_to_num(), atol=1e-5)
        outs = []
        for gen in (LMGen(model, use_sampling=False), RefGen(ref, use_sampling=False)):
            with gen.streaming(1):
                outs.append([gen.step(user[:, :, t:t + 1]) for t in range(12)])
    assert all(torch.equal(x, y) for x, y in zip(outs[0][1:], outs[1][1:]))


def test_moshiko_7b_config_has_kyutais_parameter_names_and_shapes():
    """The released Moshi 7B config builds (on the meta device) with exactly Kyutai's keys and shapes."""
    loaders = pytest.importorskip("moshi.models.loaders")
    from moshi.models.lm import LMModel as RefLM

    kwargs = dict(loaders._lm_kwargs)
    ref = RefLM(device="meta", **kwargs)
    with torch.device("meta"):
        ours = LMModel(LMConfig.from_dict(kwargs))
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mine == theirs
    assert sum(v.numel() for v in ours.state_dict().values()) == 7_687_729_152


def test_text_only_model_without_audio_streams():
    """n_q = dep_q = 0: a plain text LM (how the cascade baseline runs the SmolLM2 backbone)."""
    cfg = LMConfig(n_q=0, dep_q=0, delays=[0], text_card=50, dim=32, num_heads=2, num_layers=1, context=16,
                   gating="silu", norm="rms_norm", positional_embedding="rope", depformer_num_layers=0)
    model = LMModel(cfg).eval()
    out = model(torch.randint(0, 50, (1, 1, 6)))
    assert out.text_logits.shape == (1, 1, 6, 50) and out.logits.shape[1] == 0
    gen = LMGen(model, use_sampling=False)
    with gen.streaming(1):
        assert gen.step(torch.zeros(1, 0, 1, dtype=torch.long)).shape == (1, 1, 1)
