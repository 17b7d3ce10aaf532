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
from typing import Iterable, Iterator

import numpy as np

from ..audio import read, write
from .base import BatchedDuplexSystem, DuplexSystem


class _Session:
    """One recorded user stream being conversed: its frames in, the system's frames out.

    Shared by ``converse`` (one system, one stream) and ``converse_many`` (one batched system,
    several streams at once), so both align and report the same way."""

    def __init__(self, user: np.ndarray, frame_size: int, sample_rate: int):
        self.F, self.sr = frame_size, sample_rate
        self.T = int(user.shape[-1])
        self.n = -(-self.T // frame_size)
        self.padded = np.zeros(self.n * frame_size, dtype=np.float32)
        self.padded[:self.T] = user
        self.out = np.zeros((self.n + 1) * frame_size, dtype=np.float32)
        self.text: list[dict] = []
        self.events: list[dict] = []  # the systems' per-frame details (e.g. a cascade's per-turn stage timings)
        self.step_ms: list[float] = []
        self.k = 0  # the next input frame
        self.t_start = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.k >= self.n

    def frame(self) -> np.ndarray:
        return self.padded[self.k * self.F:(self.k + 1) * self.F]

    def put(self, frame, ms: float) -> None:
        """The system's answer to input frame k: written at [(k + 1) F, (k + 2) F)."""
        F, sr, k = self.F, self.sr, self.k
        self.step_ms.append(ms)
        audio = np.asarray(frame.audio, dtype=np.float32).reshape(-1)
        if audio.shape[0] != F:
            raise RuntimeError(f"the system returned {audio.shape[0]} samples for a {F}-sample frame")
        self.out[(k + 1) * F:(k + 2) * F] = audio
        if frame.info:
            self.events.append({"time": round((k + 1) * F / sr, 3), **frame.info})
        if frame.text:
            self.text.append({"start": round((k + 1) * F / sr, 3), "end": round((k + 2) * F / sr, 3),
                              "text": frame.text})
        self.k += 1

    def result(self, sessions: int = 1) -> tuple[np.ndarray, list[dict], dict]:
        ms = self.step_ms
        stats = {"frames": self.n, "duration_s": round(self.T / self.sr, 3),
                 "wall_s": round(time.perf_counter() - self.t_start, 3),
                 "step_ms_p50": round(float(np.percentile(ms, 50)), 2) if ms else None,
                 "step_ms_p99": round(float(np.percentile(ms, 99)), 2) if ms else None}
        stats["realtime_factor"] = round(stats["wall_s"] / max(stats["duration_s"], 1e-9), 3)
        if sessions > 1:
            stats["sessions"] = sessions  # each step served this many conversations
        stats["events"] = self.events
        return self.out[:self.T], self.text, stats


def converse(system: DuplexSystem, user: np.ndarray, realtime: bool = False) -> tuple[np.ndarray, list[dict], dict]:
    """user float32 [T] at system.sample_rate -> (system audio [T], timed text, stats)."""
    s = _Session(user, system.frame_size, system.sample_rate)
    system.reset()
    s.t_start = time.perf_counter()
    while not s.done:
        if realtime:  # the user frame k is complete at (k + 1) F
            delay = s.t_start + (s.k + 1) * s.F / s.sr - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        frame = system.step(s.frame())
        s.put(frame, (time.perf_counter() - t0) * 1e3)
    return s.result()


def converse_many(system: BatchedDuplexSystem, users: Iterable[np.ndarray]
                  ) -> Iterator[tuple[int, tuple[np.ndarray, list[dict], dict]]]:
    """Every user stream through one batched system, up to ``system.batch_size`` at a time: yields
    (index of the stream, what ``converse`` returns for it) as each one ends.

    A session that ends is restarted (``reset(i)``) with the next stream, so the batch stays full
    (the server's continuous batching); each stream sees a fresh conversation, aligned exactly as
    ``converse`` aligns it. Sessions with nothing left to converse are stepped as inactive."""
    B, F, sr = system.batch_size, system.frame_size, system.sample_rate
    pending = enumerate(users)
    slots: list[tuple[int, _Session] | None] = [None] * B
    empty: list[tuple[int, _Session]] = []  # streams of no samples: nothing to step

    def fill(i: int) -> None:
        slots[i] = None
        for index, user in pending:
            session = _Session(np.asarray(user, np.float32), F, sr)
            if not session.done:
                slots[i] = (index, session)
                system.reset(i)
                return
            empty.append((index, session))

    for i in range(B):
        fill(i)
    batch = np.zeros((B, F), dtype=np.float32)
    while any(slots) or empty:
        while empty:
            index, session = empty.pop()
            yield index, session.result(sessions=B)
        if not any(slots):
            break
        for i, slot in enumerate(slots):
            batch[i] = slot[1].frame() if slot else 0.0
        t0 = time.perf_counter()
        frames = system.step(batch, active=[slot is not None for slot in slots])
        ms = (time.perf_counter() - t0) * 1e3
        for i, slot in enumerate(slots):
            if slot is None:
                continue
            slot[1].put(frames[i], ms)
            if slot[1].done:
                yield slot[0], slot[1].result(sessions=B)
                fill(i)


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
