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
