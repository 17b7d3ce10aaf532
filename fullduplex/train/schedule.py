"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio`` x lr."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosine:
    """The multiplier as an object: ``LambdaLR`` checkpoints an object's fields (not a lambda's), so a
    schedule resized during a run (``total``, ``sized``) resumes as it was."""

    def __init__(self, total: int, warmup: int, min_ratio: float):
        self.total, self.warmup, self.min_ratio = total, warmup, min_ratio
        self.sized = False  # set once the total's fit to a time budget is final

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.warmup, self.min_ratio)


def make_scheduler(opt: torch.optim.Optimizer, total: int, warmup: int, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(total, warmup, min_ratio))


def steps_in_budget(step: int, limit: int, elapsed_s: float, step_s: float, budget_s: float,
                    reserve: float = 0.05) -> int:
    """The total number of steps that ends within ``budget_s`` seconds: ``step`` done after
    ``elapsed_s``, ``step_s`` seconds per step from here, ``reserve`` of the budget kept for
    checkpoints and the export; at least ``step`` + 1, at most ``limit``."""
    left = budget_s * (1 - reserve) - elapsed_s
    return int(min(limit, max(step + 1, step + math.floor(left / max(step_s, 1e-9)))))
