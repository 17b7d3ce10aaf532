"""`data tokenize` shards (layout, resume, --shard) feeding LM training; LoRA adapters."""

import json

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import lm_cfg

from fullduplex.data.shard import Shard
from fullduplex.lm.lora import LoRALinear, add_lora, load_lora, merge_lora, save_lora
from fullduplex.train.tokenize import tokenize_dataset
from fullduplex.train.loop import train


def _tiny_codec(folder):
    from fullduplex.codec import Codec, randomize_codebooks, save_codec, tiny_config

    cfg = tiny_config()
    cfg.num_codebooks = 2
    torch.manual_seed(0)
    codec = Codec(cfg)
    randomize_codebooks(codec)
    return save_codec(codec, folder)


def _word_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<epad>", "<unk>", "<s>", "<pad>", "hello", "there", "how", "are", "you"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_tokenize_shards_resume_and_train(tmp_path, dataset):
    codec = _tiny_codec(tmp_path / "codec")
    tok = _word_tokenizer(tmp_path / "tok.json")
    out = tmp_path / "shards"
    r1 = tokenize_dataset(str(dataset), str(codec), str(tok), str(out), segment_s=1.6, items_per_shard=1,
                          shard=Shard(1, 2), progress=False)
    assert r1["shards_written"] == 1 and r1["shards_present"] == 1  # --shard 1/2: only shard 1
    r2 = tokenize_dataset(str(dataset), str(codec), str(tok), str(out), segment_s=1.6, items_per_shard=1,
                          progress=False)
    assert r2["shards_written"] == 1 and r2["shards_present"] == 2  # the finished shard is skipped
    d = load_file(str(out / "shard-00000.safetensors"))
    codes = d["codes"]
    assert codes.shape == (2, 5, 20)  # 3 s -> 2 windows of 1.6 s (20 frames); text + 2 + 2 codebooks
    text = codes[0, 0]
    assert {3, 0} <= set(text.tolist()) and 4 in text.tolist()  # PAD, EPAD and the word "hello"
    assert (codes[-1, 1:, -1] == -1).all()  # the last window is padded with the zero token
    meta = json.loads((out / "tokenize.json").read_text())
    assert meta["num_codebooks"] == 2 and meta["pad_id"] == 3 and meta["epad_id"] == 0
    cfg = lm_cfg(tmp_path / "run", out, steps=2, batch_size=2, **{"lm.model.card": 64})
    assert train(cfg)["finished"]


def test_lora_adapters(tmp_path):
    from fullduplex.lm import LMModel
    from fullduplex.train.config import load_config
    from train_helpers import CONFIGS

    cfg = load_config(CONFIGS / "lm_debug.yaml")
    torch.manual_seed(0)
    model = LMModel(__import__("fullduplex.lm.config", fromlist=["LMConfig"]).LMConfig.from_dict(cfg.lm.model))
    codes = torch.randint(0, 32, (2, 5, 8))
    codes[:, 0] = torch.randint(0, 64, (2, 8))
    ref = model(codes).logits
    n = add_lora(model.transformer, rank=4, scaling=2.0)
    assert n > 0 and all(isinstance(m, LoRALinear) for m in model.transformer.modules()
                         if isinstance(m, torch.nn.Linear))
    torch.testing.assert_close(model(codes).logits, ref, equal_nan=True)  # B = 0: the base model
    trainable = [k for k, p in model.transformer.named_parameters() if p.requires_grad]
    assert any(k.endswith("lora_A") for k in trainable)
    assert not any(k.endswith(".weight") for k in trainable)  # the wrapped linear layers are frozen
    with torch.no_grad():
        for m in model.transformer.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_()
    adapted = model(codes).logits
    save_lora(model, tmp_path / "lora.safetensors")
    saved = load_file(str(tmp_path / "lora.safetensors"))
    assert saved and all(k.endswith(("lora_A", "lora_B")) for k in saved)
    with torch.no_grad():
        for m in model.transformer.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.zero_()
    load_lora(model, tmp_path / "lora.safetensors")
    torch.testing.assert_close(model(codes).logits, adapted, equal_nan=True)
    merge_lora(model.transformer)
    torch.testing.assert_close(model(codes).logits, adapted, equal_nan=True, atol=1e-4, rtol=1e-4)


def test_lm_lora_training_saves_adapters_only(tmp_path, shards):
    from fullduplex.lm import LMConfig, LMModel, load_checkpoint, save_checkpoint
    from fullduplex.train.config import load_config
    from train_helpers import CONFIGS

    # the frozen base is a checkpoint folder, so the export need not ship it (a fresh `config` base would be)
    torch.manual_seed(0)
    base = save_checkpoint(LMModel(LMConfig.from_dict(load_config(CONFIGS / "lm_debug.yaml").lm.model)),
                           tmp_path / "base")
    over = {"lm.lora": True, "lm.lora_rank": 4, "lm.init": str(base), "lm.model": {}}
    cfg = lm_cfg(tmp_path / "run", shards, steps=2, ckpt_every=2, **over)
    assert train(cfg)["finished"]
    final = tmp_path / "run" / "final"
    lora = load_file(str(final / "lora.safetensors"))
    assert any(k.endswith("lora_A") for k in lora)
    assert not any(k.startswith("transformer.") and k.endswith(".weight") for k in lora)  # no frozen weights
    assert json.loads((final / "lora.json").read_text())["rank"] == 4
    model, _ = load_checkpoint(final)  # base rebuilt from the folder, adapters merged
    assert model.cfg.dim == 32 and not any(k.endswith("lora_A") for k in model.state_dict())
    resumed = train(lm_cfg(tmp_path / "run", shards, steps=3, ckpt_every=3, **over), resume=True)
    assert resumed["finished"]


def test_lm_lora_training_continues_an_adapter_folder(tmp_path, shards):
    """An adapter export (the bundled model's kind) as lm.init: its adapters keep training on its base."""
    from fullduplex.lm import load_checkpoint
    from train_helpers import adapter_folder

    src, first, codes = adapter_folder(tmp_path, shards)
    go_on = {**first, "lm.init": str(src)}

    def logits(folder):
        model, _ = load_checkpoint(folder)
        with torch.no_grad():
            return model(codes).logits

    # no learning: the continued export is the adapter folder it started from, on the same base
    assert train(lm_cfg(tmp_path / "same", shards, steps=1, ckpt_every=1, **go_on, **{"optim.lr": 0.0}))["finished"]
    info = json.loads((tmp_path / "same" / "final" / "lora.json").read_text())
    assert (tmp_path / "same" / "final" / info["base"]).resolve() == (tmp_path / "base").resolve()
    torch.testing.assert_close(logits(tmp_path / "same" / "final"), logits(src), equal_nan=True)
    # learning moves the adapters it started from
    assert train(lm_cfg(tmp_path / "more", shards, steps=2, ckpt_every=2, **go_on))["finished"]
    a, b = load_file(str(src / "lora.safetensors")), load_file(str(tmp_path / "more" / "final" / "lora.safetensors"))
    assert a.keys() == b.keys()
    assert any(k.endswith("lora_B") and not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="lm.lora_rank=4"):
        train(lm_cfg(tmp_path / "bad", shards, steps=1, **{**go_on, "lm.lora_rank": 8}))
    with pytest.raises(ValueError, match="keeps its shape"):
        train(lm_cfg(tmp_path / "bad2", shards, steps=1, **{**go_on, "lm.model": {"dim": 64}}))
