"""`train eval-lm`: the teacher-forced loss of a checkpoint on shards, as the training objective weighs it."""

import json

import pytest
import torch

from fullduplex.cli import main
from fullduplex.lm.loss import lm_loss
from fullduplex.train.lm_data import ShardWindows
from fullduplex.train.lm_eval import evaluate_lm
from fullduplex.train.loop import train

from train_helpers import lm_cfg, make_shards


def test_eval_lm_is_the_training_loss_and_falls_with_training(tmp_path, shards, capsys):
    from fullduplex.lm import load_checkpoint

    short = lm_cfg(tmp_path / "short", shards, steps=1, ckpt_every=100)
    long = lm_cfg(tmp_path / "long", shards, steps=12, ckpt_every=100)
    train(short), train(long)
    a = evaluate_lm(tmp_path / "short" / "final", shards, batch_size=4, text_padding_weight=0.5,
                    first_codebook_weight=1.0, progress=False)
    b = evaluate_lm(tmp_path / "long" / "final", shards, batch_size=4, text_padding_weight=0.5,
                    first_codebook_weight=1.0, progress=False)
    assert a["windows"] == b["windows"] == len(ShardWindows(shards, 1, 0))
    assert b["loss"] < a["loss"]
    # the same number lm_loss gives on all windows at once (batches are of equal size here)
    model, _ = load_checkpoint(tmp_path / "long" / "final")
    data = ShardWindows(shards, 1, 0)
    codes = torch.stack([data.window(i) for i in range(len(data))]).long()
    with torch.no_grad():
        ref = lm_loss(model, codes, model(codes), 0.5, 1.0)
    assert b["audio"] == pytest.approx(float(ref.audio), rel=0.02)
    assert b["loss"] == pytest.approx(float(ref.total), rel=0.02)

    assert main(["train", "eval-lm", "--checkpoint", str(tmp_path / "long" / "final"), "--shards", str(shards),
                 "--windows", "4", "--first-codebook-weight", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["windows"] == 4 and out["first_codebook_weight"] == 1.0


def test_eval_lm_refuses_shards_of_another_layout(tmp_path, shards):
    train(lm_cfg(tmp_path / "run", shards, steps=1, ckpt_every=100))
    other = tmp_path / "other"
    make_shards(other)
    from safetensors.torch import load_file, save_file

    for f in other.glob("shard-*.safetensors"):  # one codebook per channel fewer
        d = load_file(str(f))
        save_file({"codes": d["codes"][:, :3].contiguous(), "item": d["item"]}, str(f))
    with pytest.raises(ValueError, match="tokenize with the LM's codec"):
        evaluate_lm(tmp_path / "run" / "final", other, progress=False)


def test_eval_lm_listening_scores_each_window_with_another_windows_user(tmp_path, shards):
    """The mismatched pass is lm_loss on the windows with the user's codebooks rolled by half the
    windows; "words" is the text loss without PAD/EPAD targets; "listening" is their difference."""
    from fullduplex.lm import load_checkpoint

    train(lm_cfg(tmp_path / "run", shards, steps=12, ckpt_every=100))
    res = evaluate_lm(tmp_path / "run" / "final", shards, batch_size=12, text_padding_weight=0.5,
                      first_codebook_weight=1.0, progress=False, listening=True)
    model, _ = load_checkpoint(tmp_path / "run" / "final")
    data = ShardWindows(shards, 1, 0)
    n = len(data)
    codes = torch.stack([data.window(i) for i in range(n)]).long()
    user = model.cfg.audio_offset + model.cfg.dep_q
    swapped = codes.clone()
    swapped[:, user:] = codes.roll(-(n // 2), dims=0)[:, user:]
    with torch.no_grad():
        ref = lm_loss(model, swapped, model(swapped), 0.5, 1.0)
        words = lm_loss(model, codes, model(codes), 0.0, 1.0).text
    assert res["mismatched"]["audio"] == pytest.approx(float(ref.audio), rel=1e-3)
    assert res["mismatched"]["text"] == pytest.approx(float(ref.text), rel=1e-3)
    assert res["words"] == pytest.approx(float(words), rel=1e-3) and res["words"] != pytest.approx(res["text"])
    assert res["listening"]["audio"] == pytest.approx(res["mismatched"]["audio"] - res["audio"], abs=2e-4)
    assert res["listening"]["audio"] != 0  # the debug model reads the user's tokens
    with pytest.raises(ValueError, match="at least 2 windows"):
        evaluate_lm(tmp_path / "run" / "final", shards, windows=1, listening=True, progress=False)


def test_eval_lm_scores_the_words_said_back_from_the_user(tmp_path, shards):
    """echo_words: the text loss on the tokens the assistant's stream says after the user said them
    (lm/text.py echo_positions), matched and with another window's user, on the same positions."""
    from fullduplex.lm import load_checkpoint
    from fullduplex.lm.text import echo_positions

    train(lm_cfg(tmp_path / "run", shards, steps=4, ckpt_every=100))
    res = evaluate_lm(tmp_path / "run" / "final", shards, batch_size=5, progress=False, listening=True)  # 5 + 5 + 2
    model, _ = load_checkpoint(tmp_path / "run" / "final")
    data = ShardWindows(shards, 1, 0, user_text=True)
    rows = torch.stack([data.window(i) for i in range(len(data))]).long()
    codes, user_text = rows[:, :-1], rows[:, -1:]
    word = torch.ones(64, dtype=torch.bool)
    word[[3, 0]] = False                                   # the debug shards' PAD and EPAD
    with torch.no_grad():
        out = model(codes)
    where = echo_positions(codes[:, :1], user_text, word) & out.text_mask
    assert res["echo_tokens"] == int(where.sum()) > 0
    ce = torch.nn.functional.cross_entropy(out.text_logits[where].float(), codes[:, :1][where])
    assert res["echo_words"] == pytest.approx(float(ce), rel=1e-3)
    assert res["listening"]["echo_words"] == pytest.approx(res["mismatched"]["echo_words"] - res["echo_words"], abs=2e-4)


def _echo_shards(folder):
    """The debug shards with the assistant saying back, at frames 4, 8 and 12, what the user said two
    frames before."""
    from safetensors.torch import load_file, save_file

    make_shards(folder)
    for f in folder.glob("shard-*.safetensors"):
        d = load_file(str(f))
        d["codes"][:, 0, 4::4] = d["user_text"][:, 2:14:4]
        save_file(d, str(f))
    return folder


def test_echo_weight_weighs_the_words_said_back_and_learns_them_sooner(tmp_path):
    """lm.echo_weight multiplies the text loss at echo_positions (and nowhere else); on the same data and
    steps its model says those words back at a lower loss than the unweighted one."""
    from fullduplex.lm.text import echo_positions
    from fullduplex.train.distributed import Dist
    from fullduplex.train.lm_data import split_rows
    from fullduplex.train.lm_objective import LMObjective

    shards = _echo_shards(tmp_path / "shards")
    cfg = lm_cfg(tmp_path / "w", shards, steps=30, ckpt_every=100, **{"lm.echo_weight": 8.0})
    obj = LMObjective(cfg, Dist())
    codes, user_text, _ = split_rows(obj.batch(0, 0, 1), True, False)
    w = obj._frame_weights(None, codes[:, :1], user_text)
    word = torch.ones(64, dtype=torch.bool)
    word[[3, 0]] = False
    said_back = echo_positions(codes[:, :1], user_text, word)
    assert bool(said_back.any()) and torch.equal(w == 8.0, said_back) and bool((w[~said_back] == 1.0).all())
    train(cfg)
    train(lm_cfg(tmp_path / "plain", shards, steps=30, ckpt_every=100))
    weighted = evaluate_lm(tmp_path / "w" / "final", shards, progress=False)
    plain = evaluate_lm(tmp_path / "plain" / "final", shards, progress=False)
    assert weighted["echo_tokens"] == plain["echo_tokens"] > 0
    assert weighted["echo_words"] < plain["echo_words"] - 0.1
