"""`fullduplex bench data`: synthesis and statistics speed as multiples of real time."""

from __future__ import annotations

import os
import tempfile
import time

from .stats import dataset_stats
from .synth import SynthConfig, run_synth


def bench_data(minutes: float = 10.0, jobs: int | None = None, seed: int = 1234) -> dict:
    """Synthesize ``minutes`` of conversation with ``jobs`` processes, then compute its statistics."""
    jobs = jobs or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = run_synth(tmp, minutes / 60, seed=seed, jobs=jobs, cfg=SynthConfig(), progress=False)
        t_synth = time.perf_counter() - t
        audio_s = res["hours"] * 3600
        t = time.perf_counter()
        dataset_stats(tmp)
        t_stats = time.perf_counter() - t
    return {"audio_s": round(audio_s, 1), "jobs": jobs, "synth_s": round(t_synth, 2), "stats_s": round(t_stats, 3),
            "synth_x_realtime": round(audio_s / t_synth, 1), "stats_x_realtime": round(audio_s / t_stats, 1)}
