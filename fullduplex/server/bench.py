"""``fullduplex bench serve``: how many concurrent real-time sessions one server process holds.

For N = 1, 2, ... sessions, time the work the server does every 80 ms tick: decode each session's
incoming Ogg/Opus frame, step all N sessions in one batched call (codec encode, LM step, codec
decode), encode each session's output frame to Ogg/Opus. A session count is real time when the
p99 tick time is under one frame (80 ms). Sockets are not included (they cost well under a
millisecond per frame on localhost).

On a shared machine the wall-clock tick time includes waiting for the CPU. The process CPU time
per tick is reported next to it (``cpu_ms_*``): with one torch thread it is the work itself, and
``realtime_sessions_cpu`` (sessions whose p99 CPU time per tick is under 80 ms) estimates what the
same process would hold on the same cores without the other load. ``realtime_sessions`` is the
measured, wall-clock figure; ``min_ms`` (the fastest tick) shows what the least disturbed ticks took.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch


def _opus_frames(n: int, frame: int = 1920) -> list[bytes]:
    import sphn

    t = np.arange(n * frame) / 24_000
    x = (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    w = sphn.OpusStreamWriter(24_000)
    return [w.append_pcm(x[k * frame:(k + 1) * frame]) for k in range(n)]


def time_ticks(system, frames: int, warmup: int = 3, history: int = 0) -> tuple[list[float], list[float]]:
    """(wall ms, process CPU ms) per tick for ``frames`` ticks of a batched system, every session active,
    ``history`` frames into their conversations (see ``skip_history``)."""
    import sphn

    B, F = system.batch_size, system.frame_size
    pages = _opus_frames(frames + warmup + 2)
    readers = [sphn.OpusStreamReader(24_000) for _ in range(B)]
    writers = [sphn.OpusStreamWriter(24_000) for _ in range(B)]
    pending = [np.zeros(0, dtype=np.float32) for _ in range(B)]
    system.reset()
    if history:
        system.skip_history(history)
    times, cpu = [], []
    for k in range(frames + warmup):
        t0, c0 = time.perf_counter(), time.process_time()
        user = np.zeros((B, F), dtype=np.float32)
        for i in range(B):
            pcm = np.concatenate([pending[i], readers[i].append_bytes(pages[k])])
            n = min(F, pcm.shape[0])
            user[i, :n] = pcm[:n]
            pending[i] = pcm[n:]
        out = system.step(user)
        for i in range(B):
            writers[i].append_pcm(out[i].audio)
        if k >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    return times, cpu


def bench_serve(system: str = "random", checkpoint: str | None = None, max_sessions: int = 8, frames: int = 40,
                threads: int | None = None, int8: bool = True, min_sessions: int = 4,
                history_s: float | None = None) -> dict:
    """``history_s``: seconds of conversation behind every session when the timing starts; None = the
    LM's attention context (a step costs the most from there on), 0 = fresh sessions."""
    from ..systems.build import default_parts, load_parts, random_parts
    from ..systems.model import BatchedModelSystem

    if threads is not None:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    if checkpoint:
        parts = load_parts(checkpoint)
    elif system == "default":
        parts = default_parts()
    elif system in ("random", "random-tiny"):
        parts = random_parts("default" if system == "random" else "tiny")
    else:
        raise ValueError(f"bench serve runs a local model: --system random | random-tiny | default, not {system!r}")
    lm_params = sum(p.numel() for p in parts.lm.parameters())
    if int8:
        from ..lm.quantize import quantize_int8

        quantize_int8(parts.lm)  # once, shared by every batch size below
    context = parts.lm.cfg.context
    history = round(history_s * 12.5) if history_s is not None else (context or 0)
    res: dict = {"system": parts.name, "lm_params": lm_params, "history_frames": history, "lm_context": context,
                 "codec_params": sum(p.numel() for p in parts.codec.parameters()),
                 "lm_int8": int8, "frame_ms": 80.0, "statistic": "tick time p99 over timed ticks", "per_sessions": {}}
    realtime = realtime_cpu = 0
    for n in range(1, max_sessions + 1):
        sys_n = BatchedModelSystem(parts, n, sampling={"seed": 0})
        ms, cpu = time_ticks(sys_n, frames, history=history)
        p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        c50, c99 = float(np.percentile(cpu, 50)), float(np.percentile(cpu, 99))
        res["per_sessions"][n] = {"p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "min_ms": round(min(ms), 1),
                                  "cpu_ms_p50": round(c50, 1), "cpu_ms_p99": round(c99, 1)}
        if n == 1:
            res["p99_ms_one_session"] = round(p99, 1)
            res["p50_ms_one_session"] = round(p50, 1)
            res["cpu_ms_p99_one_session"] = round(c99, 1)
        sys_n.close()
        if p99 < 80.0 and realtime == n - 1:
            realtime = n
        if c99 < 80.0 and realtime_cpu == n - 1:
            realtime_cpu = n
        if n >= min_sessions and n > max(realtime, realtime_cpu):  # past real time: bigger batches only take longer
            break
    res["realtime_sessions"] = realtime
    res["realtime_sessions_cpu"] = realtime_cpu
    res["conditions"] = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                         "machine": platform.machine(), "torch": torch.__version__, "frames": frames,
                         "loadavg_1min_before": round(load_before, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2)}
    return res
