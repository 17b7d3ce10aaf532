"""``fullduplex converse``: a recorded user stream in, the conversation out, as if live.

The user's audio is fed frame by frame. The frame a system returns after user frame k is what it
says during the next frame, so it is written at [(k + 1) F, (k + 2) F); the first frame of output is
silence, and the output is cut to the input's length: sample t of the output depends only on input
before t (Full-Duplex-Bench's time alignment). The last input frame is zero-padded.

``tail_s`` appends that much silence to the user's recording (the output grows with it), so a
system can answer a recording that ends when the user stops talking.

Outputs: a stereo file (left = system, right = user) and the system's timed text
[{"start": s, "end": s, "text": piece}, ...] (times in the output's clock), plus the
system's per-frame details as ``events`` (a cascade's per-turn stage timings, say).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..audio import read, write
from .base import DuplexSystem


def converse(system: DuplexSystem, user: np.ndarray, realtime: bool = False) -> tuple[np.ndarray, list[dict], dict]:
    """user float32 [T] at system.sample_rate -> (system audio [T], timed text, stats)."""
    F, sr = system.frame_size, system.sample_rate
    T = int(user.shape[-1])
    n = -(-T // F)
    padded = np.zeros(n * F, dtype=np.float32)
    padded[:T] = user
    out = np.zeros((n + 1) * F, dtype=np.float32)
    text: list[dict] = []
    events: list[dict] = []  # the systems' per-frame details (e.g. a cascade's per-turn stage timings)
    step_ms = []
    system.reset()
    t_start = time.perf_counter()
    for k in range(n):
        if realtime:  # the user frame k is complete at (k + 1) F
            delay = t_start + (k + 1) * F / sr - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        frame = system.step(padded[k * F:(k + 1) * F])
        step_ms.append((time.perf_counter() - t0) * 1e3)
        audio = np.asarray(frame.audio, dtype=np.float32).reshape(-1)
        if audio.shape[0] != F:
            raise RuntimeError(f"the system returned {audio.shape[0]} samples for a {F}-sample frame")
        out[(k + 1) * F:(k + 2) * F] = audio
        if frame.info:
            events.append({"time": round((k + 1) * F / sr, 3), **frame.info})
        if frame.text:
            text.append({"start": round((k + 1) * F / sr, 3), "end": round((k + 2) * F / sr, 3), "text": frame.text})
    stats = {"frames": n, "duration_s": round(T / sr, 3), "wall_s": round(time.perf_counter() - t_start, 3),
             "step_ms_p50": round(float(np.percentile(step_ms, 50)), 2) if step_ms else None,
             "step_ms_p99": round(float(np.percentile(step_ms, 99)), 2) if step_ms else None}
    stats["realtime_factor"] = round(stats["wall_s"] / max(stats["duration_s"], 1e-9), 3)
    stats["events"] = events
    return out[:T], text, stats


def converse_file(system: DuplexSystem, input_path: str | Path, output_path: str | Path,
                  text_path: str | Path | None = None, stereo: bool = True, realtime: bool = False,
                  mix: bool = True, tail_s: float = 0.0) -> dict:
    """Read input (any rate, mono or downmixed), write output (system rate) and the timed text JSON;
    ``tail_s`` seconds of silence are appended to the input first."""
    if not 0 <= tail_s <= 600:
        raise ValueError(f"--tail must be between 0 and 600 seconds, got {tail_s}")
    x, _ = read(input_path, sample_rate=system.sample_rate, channels=1, mix=mix)
    user = np.concatenate([x[0], np.zeros(int(round(tail_s * system.sample_rate)), dtype=np.float32)])
    audio, text, stats = converse(system, user, realtime=realtime)
    out = np.stack([audio, user]) if stereo else audio
    write(output_path, out, system.sample_rate)
    text_path = Path(text_path) if text_path else Path(output_path).with_suffix(".json")
    text_path.write_text(json.dumps({"text": "".join(t["text"] for t in text), "chunks": text,
                                     "events": stats["events"]}, indent=1, default=float) + "\n")
    return {"input": str(input_path), "output": str(output_path), "text_file": str(text_path),
            "text": "".join(t["text"] for t in text), **stats}


def converse_folder(system: DuplexSystem, folder: str | Path, realtime: bool = False) -> list[dict]:
    """Every ``*/input.wav`` below folder -> ``output.wav`` (the system alone, mono, same length) and
    ``output_text.json`` next to it: Full-Duplex-Bench's layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    inputs = sorted(folder.rglob("input.wav"))
    if not inputs:
        raise FileNotFoundError(f"{folder}: no */input.wav items found")
    results = []
    for inp in inputs:
        results.append(converse_file(system, inp, inp.with_name("output.wav"), inp.with_name("output_text.json"),
                                     stereo=False, realtime=realtime))
    return results
