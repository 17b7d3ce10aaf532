"""The training loop shared by the codec and the LM.

    train(cfg)                   # single process, or one process of a torchrun job
    train(cfg, resume=True)      # continue from OUT/checkpoints/latest, bit for bit

With ``max_minutes`` the run is fitted to a wall-clock budget: once its first steps are timed, the
schedule's total becomes the number of steps that end in time (at most ``steps``), so the learning
rate still decays to its end. If the warmup ends later, the total is fitted again then, from all the
steps timed so far (until the decay starts a new total moves no learning rate). A run that reaches
the budget anyway stops there and exports.

Per step: the objective's batch for that step (this process's share), then for each phase (the
model; the discriminator for a GAN) forward under autocast, backward, gradient clipping, AdamW
step; all learning-rate schedules advance together; the weight EMA follows. Metrics go to
OUT/metrics.jsonl every ``log_every`` steps, checkpoints to OUT/checkpoints every ``ckpt_every``
steps and at the end, the final model (EMA weights if enabled) to OUT/final.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt
from .config import TrainConfig
from .distributed import Dist, all_reduce_mean, barrier, broadcast_int, setup, teardown
from .ema import WeightEMA
from .metrics import MetricsWriter
from .objective import Objective
from .schedule import make_scheduler, steps_in_budget

log = logging.getLogger(__name__)


class NonFiniteLoss(RuntimeError):
    pass


CALIBRATION_STEPS = 10  # steps a budgeted run times before it sizes its schedule


class _Budget:
    """``cfg.max_minutes`` for one call of ``train``. After CALIBRATION_STEPS steps of this call (the
    first, with its one-off costs, untimed) the steps that fit what is left of the budget become
    every schedule's total; if the warmup is not over yet, again at its end, timed over all the steps
    since the first (a slow moment while the first steps were timed then no longer shortens the
    run). The sizing made once the decay has begun is final: the schedules' checkpointed state keeps
    it, so a resumed run ends where the first one planned. Rank 0's clock decides for every process."""

    def __init__(self, cfg: TrainConfig, dist: Dist, clock):
        self.budget_s, self.dist, self.clock = cfg.max_minutes * 60.0, dist, clock
        self.t0, self.t1 = clock(), None  # start of this call, end of its first step
        self.limit = cfg.steps

    def resize(self, step: int, done_here: int, sized: bool, warmup: int) -> tuple[int, float, bool] | None:
        """(new total, seconds per step, final) at the calibration step, and at the end of the warmup
        if that comes later, of a schedule whose size is not final yet."""
        now = self.clock()
        if done_here == 1:
            self.t1 = now
        if sized or self.t1 is None or done_here < CALIBRATION_STEPS:
            return None
        if done_here != CALIBRATION_STEPS and step != warmup:
            return None
        step_s = (now - self.t1) / (done_here - 1)
        new = steps_in_budget(step, self.limit, now - self.t0, step_s, self.budget_s)
        return broadcast_int(new, self.dist), step_s, step >= warmup

    def spent(self) -> bool:
        return bool(broadcast_int(int(self.clock() - self.t0 >= self.budget_s), self.dist))


def _set_total(scheds: dict, total: int, final: bool = True) -> None:
    for s in scheds.values():
        for fn in set(s.lr_lambdas):
            fn.total, fn.sized = total, final


def build_objective(cfg: TrainConfig, dist: Dist, data=None) -> Objective:
    """The objective of ``cfg.kind``; ``data`` replaces the configured data source (tests)."""
    if cfg.kind == "codec":
        from .codec_objective import CodecObjective

        return CodecObjective(cfg, dist, data)
    from .lm_objective import LMObjective

    return LMObjective(cfg, dist, data)


def _wrap(module: nn.Module, cfg: TrainConfig, dist: Dist, obj: Objective) -> nn.Module:
    if not dist.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    if cfg.distributed == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP(module, use_orig_params=True, device_id=dist.device if dist.device.type == "cuda" else None)
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[dist.device.index] if dist.device.type == "cuda" else None,
               find_unused_parameters=obj.find_unused_parameters, broadcast_buffers=obj.broadcast_buffers)


def _full_state(module: nn.Module, wrapped: nn.Module, cfg: TrainConfig, dist: Dist) -> dict[str, torch.Tensor]:
    if dist.enabled and cfg.distributed == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return module.state_dict()


def _optim_state(opt, wrapped: nn.Module, cfg: TrainConfig, dist: Dist) -> dict:
    if dist.enabled and cfg.distributed == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(wrapped, opt, options=StateDictOptions(full_state_dict=True,
                                                                                cpu_offload=True))
    return opt.state_dict()


def _rng_state(dist: Dist) -> list[dict]:
    """Every process's RNG states, in rank order."""
    mine = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        mine["cuda"] = torch.cuda.get_rng_state(dist.device)
    if not dist.enabled:
        return [mine]
    out: list = [None] * dist.world
    torch.distributed.all_gather_object(out, mine)
    return out


def _make_optimizer(params: list[nn.Parameter], cfg: TrainConfig, lr: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms, scales, biases)."""
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    o = cfg.optim
    return torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                              {"params": other, "weight_decay": 0.0}], lr=lr, betas=tuple(o.betas), eps=o.eps)


def _autocast(cfg: TrainConfig, device: torch.device):
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, data=None,
          clock=time.monotonic) -> dict:
    """Run (or continue) training; returns a summary. ``stop_after`` ends this process after that
    many steps of this call, as a kill would (used to test resuming); ``data`` (an object with
    ``batch(step, rank, world)``) replaces the configured data; ``clock`` times the budget."""
    dist = setup()
    try:
        return _train(cfg, dist, resume, stop_after, data, clock)
    finally:
        teardown(dist)


def _train(cfg: TrainConfig, dist: Dist, resume: bool, stop_after: int | None, data, clock) -> dict:
    budget = _Budget(cfg, dist, clock) if cfg.max_minutes > 0 else None
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % dist.world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {dist.world} processes")
    out = Path(cfg.out_dir)
    ckpt_root = out / "checkpoints"
    torch.manual_seed(cfg.seed)  # same seed on every process: the model's random draws agree
    obj = build_objective(cfg, dist, data).to(dist.device)
    parts = obj.parts()
    if list(parts)[0] != "model":
        raise RuntimeError("an objective's first part must be 'model'")
    lrs = {name: obj.lr(name) or cfg.optim.lr for name in parts}
    params = {name: obj.trainable(name) for name in parts}
    wrapped = {name: _wrap(m, cfg, dist, obj) for name, m in parts.items()}
    opts = {name: _make_optimizer(params[name], cfg, lrs[name]) for name in parts}
    scheds = {name: make_scheduler(opts[name], cfg.steps, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio)
              for name in parts}
    ema = WeightEMA(parts["model"], cfg.ema) if cfg.ema > 0 else None

    step = 0
    if resume:
        last = ckpt.latest_checkpoint(ckpt_root)
        if last is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {ckpt_root}")
        step = _restore(last, obj, parts, wrapped, opts, scheds, ema, cfg, dist)
        log.info("resumed from %s at step %d", last, step)
    elif dist.main and ckpt.latest_checkpoint(ckpt_root) is not None:
        raise ValueError(f"{ckpt_root} already holds checkpoints: pass --resume to continue, "
                         "or choose another out_dir")
    plan = scheds["model"].lr_lambdas[0]
    for sch in scheds.values():  # the schedule follows this call's config, but for a budget's total
        for fn in set(sch.lr_lambdas):
            fn.warmup, fn.min_ratio = cfg.optim.warmup_steps, cfg.optim.min_lr_ratio
            keep = fn.sized and cfg.max_minutes > 0
            fn.total, fn.sized = (min(fn.total, cfg.steps), True) if keep else (cfg.steps, False)
    total = plan.total
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    writer = MetricsWriter(out, enabled=dist.main)
    if dist.main:
        n_train = sum(p.numel() for ps in params.values() for p in ps)
        writer.write(step, {}, event="resume" if resume else "start", trainable_params=n_train,
                     world=dist.world)

    bar = None
    if cfg.progress and dist.main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=f"train {cfg.kind}", unit="step", dynamic_ncols=True)
    acc: dict[str, float] = {}
    n_acc, t0, done_here = 0, time.time(), 0
    last_loss = float("nan")
    for m in parts.values():
        m.train()
    while step < total:
        batch = obj.batch(step, dist.rank, dist.world)
        metrics: dict[str, float] = {}
        for name in obj.phases(step):
            opts[name].zero_grad(set_to_none=True)
            with _autocast(cfg, dist.device):
                loss, m = obj.loss(name, wrapped, batch, step)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"step {step}: {name} loss is {loss.item()} ({m}); the last checkpoint "
                                    f"is intact, lower optim.lr or check the data")
            loss.backward()
            if cfg.optim.grad_clip > 0:
                gn = torch.nn.utils.clip_grad_norm_(params[name], cfg.optim.grad_clip)
                metrics[f"{name}/grad_norm"] = float(gn)
            opts[name].step()
            metrics.update(m)
            if name == "model":
                last_loss = float(loss.detach())
        for name in parts:
            metrics[f"{name}/lr"] = scheds[name].get_last_lr()[0]
            scheds[name].step()
        if ema is not None:
            ema.update(parts["model"])
        step += 1
        done_here += 1
        if budget is not None:
            sized = budget.resize(step, done_here, plan.sized, plan.warmup)
            if sized is not None:
                total = sized[0]
                _set_total(scheds, total, final=sized[2])
                if bar is not None:
                    bar.total = total
                    bar.refresh()
                writer.write(step, {}, event="schedule", steps=total, step_s=round(sized[1], 4),
                             max_minutes=cfg.max_minutes, final=sized[2])
            if step < total and budget.spent():
                total = step  # out of time: this step's checkpoint and the export end the run
                _set_total(scheds, total)
                writer.write(step, {}, event="budget_spent", max_minutes=cfg.max_minutes)
        for k, v in metrics.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        n_acc += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}")
        if step % cfg.log_every == 0 or step == total:
            vals = all_reduce_mean({k: v / n_acc for k, v in acc.items()}, dist)
            elapsed = time.time() - t0
            vals["steps_per_s"] = n_acc / max(elapsed, 1e-9)
            writer.write(step, vals)
            acc, n_acc, t0 = {}, 0, time.time()
        if step % cfg.ckpt_every == 0 or step == total:
            _save(ckpt_root, step, obj, parts, wrapped, opts, scheds, ema, cfg, dist)
        if stop_after is not None and done_here >= stop_after and step < total:
            break
    if bar is not None:
        bar.close()
    finished = step >= total
    if finished and dist.main:
        if ema is not None:
            ema.copy_to(parts["model"])
        obj.export(out / "final")
    writer.close()
    barrier(dist)
    return {"step": step, "steps": total, "finished": finished, "loss": last_loss, "out_dir": str(out)}


def _save(root: Path, step: int, obj: Objective, parts, wrapped, opts, scheds, ema, cfg, dist: Dist) -> None:
    tensors = {}
    for name, m in parts.items():
        sd = _full_state(m, wrapped[name], cfg, dist)
        keep = obj.state_keys(name)
        tensors[name] = {k: v for k, v in sd.items() if keep is None or k in keep}
    if ema is not None:
        tensors["ema"] = ema.state_dict()
    state = {
        "step": step,
        "data_position": step * cfg.batch_size,
        "optimizers": {n: _optim_state(o, wrapped[n], cfg, dist) for n, o in opts.items()},
        "schedulers": {n: s.state_dict() for n, s in scheds.items()},
        "rng": _rng_state(dist),
        "world": dist.world,
    }
    if dist.main:
        ckpt.save_checkpoint(root, step, tensors, state, export=obj.export, keep=cfg.keep_checkpoints)
    barrier(dist)


def _restore(last: Path, obj: Objective, parts, wrapped, opts, scheds, ema, cfg, dist: Dist) -> int:
    state = ckpt.load_state(last)
    for name, m in parts.items():
        sd = ckpt.load_tensors(last, name)
        keep = obj.state_keys(name)
        res = m.load_state_dict(sd, strict=keep is None)
        if keep is not None:
            missing = sorted(set(keep) - set(sd))
            if missing or res.unexpected_keys:
                raise ValueError(f"{last}/{name}.safetensors does not match the model: missing {missing[:4]}, "
                                 f"unexpected {list(res.unexpected_keys)[:4]}")
        for mod in m.modules():  # cached centroids / packed weights follow the loaded tensors
            if hasattr(mod, "invalidate"):
                mod.invalidate()
    if ema is not None:
        ema.load_state_dict(ckpt.load_tensors(last, "ema"))
    for name, o in opts.items():
        osd = state["optimizers"][name]
        if dist.enabled and cfg.distributed == "fsdp":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(wrapped[name], o, osd, options=StateDictOptions(full_state_dict=True))
        else:
            o.load_state_dict(osd)
        scheds[name].load_state_dict(state["schedulers"][name])
    rngs = state["rng"]
    mine = rngs[dist.rank] if dist.rank < len(rngs) else rngs[0]
    torch.set_rng_state(mine["torch"])
    if "cuda" in mine and torch.cuda.is_available():
        torch.cuda.set_rng_state(mine["cuda"], dist.device)
    step = int(state["step"])
    if not math.isfinite(step) or step < 0:
        raise ValueError(f"{last}: bad step {step}")
    return step
