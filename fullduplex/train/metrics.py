"""Metrics to ``OUT/metrics.jsonl`` (one JSON object per logged step) and to TensorBoard when the
``tensorboard`` package is installed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..data.format import read_jsonl


class MetricsWriter:
    def __init__(self, out_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: JSONL only
                self.tb = None

    def write(self, step: int, values: dict[str, float], **extra) -> None:
        if not self.enabled:
            return
        rec = {"step": step, "time": round(time.time(), 3), **extra,
               **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(out_dir: str | Path) -> list[dict]:
    p = Path(out_dir) / "metrics.jsonl"
    return read_jsonl(p) if p.exists() else []
