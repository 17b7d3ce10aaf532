"""Run a DuplexSystem over one item's input.wav and write its time-aligned output next to the
item's record: output.wav (system rate, same length as the input), output_text.json (timed text
pieces) and timing.json (step times). The stepping itself is ``fullduplex.systems.converse``
(Full-Duplex-Bench's time alignment: the frame returned after input frame k is written at
[(k+1)F, (k+2)F), output cut to the input's length)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from fullduplex.audio import read, resample, write
from fullduplex.data.format import write_json
from fullduplex.systems import BatchedDuplexSystem, DuplexSystem
from fullduplex.systems.converse import converse, converse_many


def _user(path, sample_rate: int):
    x, sr = read(path, channels=1, mix=True)
    return resample(x[0], sr, sample_rate)


def _write(out_dir: str | Path, sample_rate: int, frame_size: int, result) -> dict:
    audio, text, stats = result
    d = Path(out_dir)
    write(d / "output.wav", audio, sample_rate)
    write_json(d / "output_text.json", text)
    write_json(d / "timing.json", dict(stats, frame_s=frame_size / sample_rate))
    return stats


def run_file(system: DuplexSystem, input_wav: str | Path, out_dir: str | Path) -> dict:
    """Returns converse's stats (frames, wall_s, step_ms_p50, step_ms_p99, realtime_factor)."""
    result = converse(system, _user(input_wav, system.sample_rate))
    return _write(out_dir, system.sample_rate, system.frame_size, result)


def run_files(system: BatchedDuplexSystem, inputs: list, out_dirs: list) -> Iterator[dict]:
    """``run_file`` for many items at once, as sessions of one batched system: yields each item's
    stats as it ends (in the order they end). Each item's output is aligned as ``run_file`` aligns it;
    its step times are those of steps that served ``system.batch_size`` sessions."""
    sr, F = system.sample_rate, system.frame_size
    users = (_user(p, sr) for p in inputs)
    for i, result in converse_many(system, users):
        yield _write(out_dirs[i], sr, F, result)
