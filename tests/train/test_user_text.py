"""The user transcript head: the user's words in the shards, the head's alignment, its training loss,
and `eval-lm`'s ``user_words``."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_tokenize_lora import _tiny_codec, _word_tokenizer
from train_helpers import FixedBatch, lm_cfg

from fullduplex.lm.config import LMConfig
from fullduplex.lm.model import random_lm
from fullduplex.train.lm_data import ShardWindows
from fullduplex.train.lm_eval import evaluate_lm
from fullduplex.train.loop import train
from fullduplex.train.tokenize import tokenize_dataset

HELLO, THERE, HOW, ARE = 4, 5, 6, 7  # ids of the test tokenizer


def test_tokenize_writes_each_speakers_words_and_adds_the_user_to_old_shards(tmp_path, dataset):
    codec, tok = _tiny_codec(tmp_path / "codec"), _word_tokenizer(tmp_path / "tok.json")
    out = tmp_path / "shards"
    tokenize_dataset(str(dataset), str(codec), str(tok), str(out), segment_s=1.6, items_per_shard=1, progress=False)
    path = out / "shard-00000.safetensors"
    made = {k: v.clone() for k, v in load_file(str(path)).items()}
    # window 0 (0-1.6 s): the assistant says "hello", "how"; the user "there", "are"
    own, user = set(made["codes"][0, 0].tolist()), set(made["user_text"][0].tolist())
    assert {HELLO, HOW} <= own and not {THERE, ARE} & own
    assert {THERE, ARE} <= user and not {HELLO, HOW} & user
    assert made["user_text"].shape == made["codes"][:, 0].shape
    assert (made["user_text"][-1, -1] == -1).all()  # the padded end of the last window
    # a shard made before user_text existed gets it on a rerun, without encoding the audio again
    save_file({"codes": made["codes"], "item": made["item"]}, str(path))
    with pytest.raises(ValueError, match="no user_text.*rerun `fullduplex data tokenize`"):
        ShardWindows(out, 2, 0, user_text=True)
    r = tokenize_dataset(str(dataset), str(codec), str(tok), str(out), segment_s=1.6, items_per_shard=1, progress=False)
    assert r["shards_written"] == 0 and r["user_text_added"] == 1 and r["floor_added"] == 1
    again = load_file(str(path))
    assert torch.equal(again["user_text"], made["user_text"]) and torch.equal(again["codes"], made["codes"])


def _head_lm(delay: int = 3, layer: int | None = None):
    cfg = LMConfig(dim=32, num_heads=2, num_layers=2, n_q=4, dep_q=2, card=32, text_card=64, delays=[0, 0, 1, 0, 1],
                   depformer_dim=32, depformer_num_heads=2, depformer_num_layers=1, user_text_delay=delay,
                   user_text_layer=layer)
    return random_lm(cfg)


def test_the_head_reads_the_user_d_steps_late_and_starts_as_the_text_head():
    model, D, T = _head_lm(), 3, 12
    codes = torch.randint(0, 32, (2, 5, T))
    codes[:, 0] = torch.randint(0, 64, (2, T))
    user = torch.randint(5, 64, (2, 1, T))  # words at every frame ...
    user[0, 0, 2] = 3  # ... but one PAD and one zero token, which the head leaves out
    user[1, 0, 4] = -1

    def head(codes):
        with torch.no_grad():
            out = model(codes)
            logits, targets = model.user_text_logits(out.hidden, user)
        return out, logits.view(-1, logits.shape[-1]), targets

    out, logits, targets = head(codes)
    words = model.user_words(user, T)
    assert words.shape == (2, T - D) and int(words.sum()) == 2 * (T - D) - 2 and torch.equal(targets, user[:, 0, :T - D][words])
    # identity projection at first: frame t's logits are the text head's at step t + D
    assert torch.allclose(logits, out.text_logits[:, 0, D:][words], atol=1e-5)
    # frame t is read at step t + D: user audio of frames >= t + D cannot change it
    later = codes.clone()
    later[:, 3:, 7:] = (later[:, 3:, 7:] + 1) % 32
    _, logits2, _ = head(later)
    frame = torch.arange(T - D).expand(2, -1)[words]
    read_before_7 = frame + D <= 7  # step 7 reads the frames before 7
    assert torch.allclose(logits2[read_before_7], logits[read_before_7], atol=1e-5)
    assert not torch.allclose(logits2[~read_before_7], logits[~read_before_7], atol=1e-5)
    with pytest.raises(ValueError, match="user_text_delay"):
        LMConfig(delays=[0] * 9, user_text_delay=-1)


def test_the_head_can_read_a_lower_layer():
    model = _head_lm(layer=0)
    codes = torch.randint(0, 32, (1, 5, 10))
    user = torch.randint(5, 64, (1, 1, 10))
    with torch.no_grad():
        out = model(codes)
        before = model.user_text_logits(out.hidden, user)[0]
        for p in model.transformer.layers[1].parameters():
            p.add_(0.1)
        out2 = model(codes)
    assert torch.equal(model.user_text_logits(out2.hidden, user)[0], before)
    assert not torch.allclose(out2.text_logits, out.text_logits, rtol=0, atol=1e-6)  # the upper layer changed the text
    with torch.no_grad():
        for p in model.transformer.layers[0].parameters():
            p.add_(0.1)
        out3 = model(codes)
    assert not torch.allclose(model.user_text_logits(out3.hidden, user)[0], before, rtol=0, atol=1e-6)  # the lower one reaches it
    with pytest.raises(ValueError, match="user_text_layer=2 must be a temporal layer"):
        _head_lm(layer=2)


def test_training_with_the_head_learns_the_users_words_and_eval_lm_reports_them(tmp_path, shards):
    over = {"lm.model.user_text_delay": 2, "steps": 12, "ckpt_every": 100, "log_every": 1}
    cfg = lm_cfg(tmp_path / "run", shards, **over)
    train(cfg, data=FixedBatch(ShardWindows(shards, cfg.batch_size, cfg.seed, user_text=True)))
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    user = [r["user_text"] for r in log if "user_text" in r]
    assert len(user) >= 10 and user[-1] < 0.8 * user[0]  # the same batch: the transcript loss falls
    final = tmp_path / "run" / "final"
    scored = evaluate_lm(final, shards, windows=6, progress=False, listening=True)
    assert scored["user_words"] > 0 and "user_words" in scored["listening"]
    # a model without the head scores the same shards without user_words
    plain = lm_cfg(tmp_path / "plain", shards, steps=1, ckpt_every=100)
    train(plain)
    assert "user_words" not in evaluate_lm(tmp_path / "plain" / "final", shards, windows=2, progress=False)


def test_an_adapter_folder_trained_without_the_head_can_start_one(tmp_path, shards):
    """Continuing an adapter folder (the bundled model's kind) with lm.model.user_text_delay adds the head."""
    from fullduplex.lm import load_checkpoint
    from train_helpers import adapter_folder

    src, first, codes = adapter_folder(tmp_path, shards, steps=2)
    head = {**first, "lm.init": str(src), "lm.model": {"user_text_delay": 2, "user_text_layer": 0}}

    def run(folder):
        model, _ = load_checkpoint(folder)
        with torch.no_grad():
            return model, model(codes)

    # no learning: the model is the one it started from, now with an identity head on layer 0
    assert train(lm_cfg(tmp_path / "same", shards, steps=1, ckpt_every=1, **head, **{"optim.lr": 0.0}))["finished"]
    (old, a), (new, b) = run(src), run(tmp_path / "same" / "final")
    assert old.user_text_proj is None and (new.cfg.user_text_delay, new.cfg.user_text_layer) == (2, 0)
    torch.testing.assert_close(b.logits, a.logits, equal_nan=True)
    torch.testing.assert_close(b.text_logits, a.text_logits)
    assert torch.equal(new.user_text_proj.weight, torch.eye(new.cfg.dim))
    # learning trains the head on the user's words, and the export keeps it
    assert train(lm_cfg(tmp_path / "more", shards, steps=2, ckpt_every=2, log_every=1, **head))["finished"]
    log = [json.loads(line) for line in (tmp_path / "more" / "metrics.jsonl").read_text().splitlines()]
    assert any("user_text" in r for r in log)
    trained, _ = run(tmp_path / "more" / "final")
    assert not torch.equal(trained.user_text_proj.weight, torch.eye(new.cfg.dim))
    # a continued folder that already has the head keeps it as it was built
    again = {**head, "lm.init": str(tmp_path / "more" / "final"), "lm.model": {"user_text_delay": 3}}
    with pytest.raises(ValueError, match="keeps its shape"):
        train(lm_cfg(tmp_path / "bad", shards, steps=1, **again))
