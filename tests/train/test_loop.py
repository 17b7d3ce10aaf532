"""The training loop end to end on CPU: debug configs, loss going down, exact resume, checkpoints."""

import json

import pytest
import torch
from safetensors.torch import load_file

from fullduplex.train import checkpoint as ckpt
from fullduplex.train.codec_data import SpeechCrops
from fullduplex.train.lm_data import ShardWindows
from fullduplex.train.loop import train
from fullduplex.train.metrics import read_metrics

from train_helpers import FixedBatch, codec_cfg, lm_cfg


def _losses(out):
    return [m["loss"] for m in read_metrics(out) if "loss" in m]


def test_codec_debug_loss_decreases_on_fixed_batch(tmp_path, dataset):
    cfg = codec_cfg(tmp_path / "run", dataset, steps=10, log_every=1, ckpt_every=100,
                    **{"codec.adversarial": False, "codec.quantizer_dropout": 0.0,
                       "codec.no_quantization_rate": 0.0, "optim.lr": 3e-3})
    data = FixedBatch(SpeechCrops(dataset, cfg.batch_size, cfg.codec.segment_s, 0))
    res = train(cfg, data=data)
    assert res["finished"]
    losses = _losses(tmp_path / "run")
    assert len(losses) == 10 and losses[-1] < losses[0]
    from fullduplex.codec import load_codec

    codec = load_codec(tmp_path / "run" / "final")  # the exported model loads as a codec checkpoint
    assert codec.encode(torch.zeros(1, 1, 1920)).shape == (1, 8, 1)


def test_lm_debug_loss_decreases_on_fixed_batch(tmp_path, shards):
    cfg = lm_cfg(tmp_path / "run", shards, steps=12, log_every=1, ckpt_every=100)
    res = train(cfg, data=FixedBatch(ShardWindows(shards, cfg.batch_size, 0)))
    losses = _losses(tmp_path / "run")
    assert res["finished"] and losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


def _weights(run):
    last = ckpt.latest_checkpoint(run / "checkpoints")
    return last, load_file(str(last / "model.safetensors"))


@pytest.mark.parametrize("kind", ["codec", "lm"])
def test_killed_run_resumes_exactly(tmp_path, dataset, shards, kind):
    make = (lambda out: codec_cfg(out, dataset, steps=6, ckpt_every=3, log_every=1)) if kind == "codec" else \
        (lambda out: lm_cfg(out, shards, steps=6, ckpt_every=3, log_every=1, ema=0.9))
    full = train(make(tmp_path / "full"))
    part = train(make(tmp_path / "part"), stop_after=4)  # "killed" after step 4; last checkpoint at 3
    assert not part["finished"] and part["step"] == 4
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(make(tmp_path / "part"))  # a fresh start never overwrites a run
    resumed = train(make(tmp_path / "part"), resume=True)
    assert resumed["finished"] and resumed["loss"] == full["loss"]
    (la, a), (lb, b) = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert la.name == lb.name == "step_00000006"
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    if kind == "codec":  # the discriminator and its optimizer resumed too
        da, db = load_file(str(la / "disc.safetensors")), load_file(str(lb / "disc.safetensors"))
        assert all(torch.equal(da[k], db[k]) for k in da)
    else:
        ea, eb = load_file(str(la / "ema.safetensors")), load_file(str(lb / "ema.safetensors"))
        assert all(torch.equal(ea[k], eb[k]) for k in ea)
    events = [m.get("event") for m in read_metrics(tmp_path / "part") if "event" in m]
    assert events == ["start", "resume"]


def test_checkpoint_write_is_atomic(tmp_path):
    root = tmp_path / "ck"
    ckpt.save_checkpoint(root, 1, {"model": {"w": torch.ones(2)}}, {"step": 1})
    # a writer killed half-way leaves only a temporary folder: latest still points to step 1
    (root / ".tmp-step_00000002-99999").mkdir()
    (root / ".tmp-step_00000002-99999" / "model.safetensors").write_bytes(b"partial")
    assert ckpt.latest_checkpoint(root).name == "step_00000001"
    assert ckpt.load_state(root / "step_00000001")["step"] == 1
    ckpt.save_checkpoint(root, 2, {"model": {"w": torch.zeros(2)}}, {"step": 2}, keep=1)
    assert ckpt.latest_checkpoint(root).name == "step_00000002"
    assert not (root / "step_00000001").exists() and not (root / ".tmp-step_00000002-99999").exists()


def test_config_errors(tmp_path):
    from fullduplex.train.config import config_from_dict, load_config

    with pytest.raises(ValueError, match="unknown keys"):
        config_from_dict({"kind": "codec", "optim": {"learning_rate": 1}})
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"kind": "lm", "steps": 3}))
    assert load_config(p, {"optim.lr": 0.5}).optim.lr == 0.5
    from fullduplex.train.config import parse_override

    key, value = parse_override("optim.lr=3e-4")  # YAML 1.1 reads this as a string
    cfg = load_config(p, {key: value, "steps": 12.0})
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float) and cfg.steps == 12
    for bad, msg in (({"optim.lr": "fast"}, "optim.lr must be a number"),
                     ({"steps": 2.5}, "steps must be an integer"),
                     ({"progress": "yes"}, "progress must be true or false")):
        with pytest.raises(ValueError, match=msg):
            load_config(p, bad)


def test_cli_train_and_resume(tmp_path, shards, capsys):
    from fullduplex.cli import main

    args = ["train", "lm", "--config", "lm_debug", "--out-dir", str(tmp_path / "run"), "--set", f"lm.shards={shards}",
            "--set", "steps=3", "--set", "ckpt_every=2", "--set", "progress=false"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["finished"]
    assert main(args) == 2  # checkpoints exist: refuses to start over
    assert main(args[:-2] + ["--set", "steps=4", "--resume"]) == 0
    assert main(["train", "codec", "--config", "lm_debug", "--out-dir", str(tmp_path / "x")]) == 2


class _Clock:
    """A wall clock the test moves: every batch read "takes" ``step_s(step)`` seconds."""

    def __init__(self, step_s):
        self.t, self.step_s = 0.0, step_s

    def __call__(self):
        return self.t

    def data(self, source):
        clock = self

        class Timed:
            def batch(self, step, rank=0, world=1):
                clock.t += clock.step_s(step)
                return source.batch(step, rank, world)

        return Timed()


def _budget_run(tmp_path, shards, name, step_s, max_minutes=0.5, resume=False, stop_after=None, **over):
    from fullduplex.train.lm_data import ShardWindows

    cfg = lm_cfg(tmp_path / name, shards, steps=1000, max_minutes=max_minutes, log_every=1, ckpt_every=12, **over)
    clock = _Clock(step_s)
    return cfg, train(cfg, resume=resume, stop_after=stop_after,
                      data=clock.data(ShardWindows(shards, cfg.batch_size, 0)), clock=clock)


def test_a_time_budget_sizes_the_schedule_and_a_resume_keeps_it(tmp_path, shards):
    from fullduplex.train.schedule import lr_factor

    # 1 s a step: after the 10 timed steps, 28.5 s of the 30 s budget fit 18 more steps
    cfg, full = _budget_run(tmp_path, shards, "full", lambda s: 1.0)
    assert full["finished"] and full["step"] == full["steps"] == 28
    rows = read_metrics(tmp_path / "full")
    plan = [m for m in rows if m.get("event") == "schedule"]
    assert len(plan) == 1 and plan[0]["steps"] == 28 and plan[0]["step_s"] == 1.0
    lrs = [m["model/lr"] for m in rows if "model/lr" in m]
    o = cfg.optim
    assert lrs[-1] == pytest.approx(o.lr * lr_factor(27, 28, o.warmup_steps, o.min_lr_ratio), rel=0.01)  # rounded
    assert lrs[-1] < 0.2 * o.lr * lr_factor(27, 1000, o.warmup_steps, o.min_lr_ratio)  # it decayed
    assert (tmp_path / "full" / "final" / "model.safetensors").exists()

    # killed after the schedule was sized: the resumed run ends at the same step with the same loss
    _, part = _budget_run(tmp_path, shards, "part", lambda s: 1.0, stop_after=15)
    assert not part["finished"] and part["steps"] == 28
    _, resumed = _budget_run(tmp_path, shards, "part", lambda s: 1.5, resume=True)  # slower, not resized
    assert resumed["step"] == 28 and resumed["loss"] == full["loss"]


def test_a_slow_start_is_timed_again_when_the_warmup_ends(tmp_path, shards):
    from fullduplex.train.schedule import lr_factor

    # 3 s a step while the first 10 are timed, then 1 s: sized to 38 steps at step 10 (84 s left at
    # 3 s), then at the end of the 20-step warmup to 58 (74 s left at 37 s / 19 steps)
    cfg, res = _budget_run(tmp_path, shards, "slowstart", lambda s: 3.0 if s < 10 else 1.0,
                           max_minutes=2.0, **{"optim.warmup_steps": 20})
    assert res["finished"] and res["step"] == res["steps"] == 58
    rows = read_metrics(tmp_path / "slowstart")
    plan = [(m["step"], m["steps"], m["final"]) for m in rows if m.get("event") == "schedule"]
    assert plan == [(10, 38, False), (20, 58, True)]
    o, lrs = cfg.optim, [m["model/lr"] for m in rows if "model/lr" in m]
    assert lrs[:20] == pytest.approx([o.lr * (i + 1) / 20 for i in range(20)], rel=0.01)  # the warmup, unmoved
    assert lrs[20] == pytest.approx(o.lr, rel=0.01)
    assert lrs[-1] == pytest.approx(o.lr * lr_factor(57, 58, 20, o.min_lr_ratio), rel=0.01)


def test_a_run_that_reaches_its_budget_stops_and_exports(tmp_path, shards):
    # timed at 1 s a step, then 4 s a step: the 30 s are spent after step 15, long before the planned 28
    _, res = _budget_run(tmp_path, shards, "slow", lambda s: 1.0 if s < 10 else 4.0)
    assert res["finished"] and res["step"] == res["steps"] == 15
    events = [m["event"] for m in read_metrics(tmp_path / "slow") if "event" in m]
    assert events == ["start", "schedule", "budget_spent"]
    assert ckpt.latest_checkpoint(tmp_path / "slow" / "checkpoints").name == "step_00000015"
    assert (tmp_path / "slow" / "final" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="max_minutes"):
        lm_cfg(tmp_path / "x", shards, max_minutes=-1)
