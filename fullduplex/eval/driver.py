"""Run a DuplexSystem over one item's input.wav and write its time-aligned output next to the
item's record: output.wav (system rate, same length as the input), output_text.json (timed text
pieces), timing.json (step times) and, last, source.json (the input's SHA-1: an output is reused
only for the input it was made from). The stepping itself is ``fullduplex.systems.converse``
(Full-Duplex-Bench's time alignment: the frame returned after input frame k is written at
[(k+1)F, (k+2)F), output cut to the input's length)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

from fullduplex.audio import read, resample, write
from fullduplex.data.format import write_json
from fullduplex.systems import BatchedDuplexSystem, DuplexSystem
from fullduplex.systems.converse import converse, converse_many


def _user(path, sample_rate: int):
    x, sr = read(path, channels=1, mix=True)
    return resample(x[0], sr, sample_rate)


SOURCE = "source.json"


def input_sha1(input_wav: str | Path) -> str:
    return hashlib.sha1(Path(input_wav).read_bytes()).hexdigest()


def is_done(input_wav: str | Path, out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a complete output made from this very input."""
    src = Path(out_dir) / SOURCE
    try:
        return json.loads(src.read_text()).get("input_sha1") == input_sha1(input_wav)
    except (OSError, ValueError):
        return False


def _write(out_dir: str | Path, input_wav: str | Path, sample_rate: int, frame_size: int, result) -> dict:
    audio, text, stats = result
    d = Path(out_dir)
    (d / SOURCE).unlink(missing_ok=True)
    write(d / "output.wav", audio, sample_rate)
    write_json(d / "output_text.json", text)
    write_json(d / "timing.json", dict(stats, frame_s=frame_size / sample_rate))
    write_json(d / SOURCE, {"input": str(input_wav), "input_sha1": input_sha1(input_wav)})
    return stats


def run_file(system: DuplexSystem, input_wav: str | Path, out_dir: str | Path) -> dict:
    """Returns converse's stats (frames, wall_s, step_ms_p50, step_ms_p99, realtime_factor)."""
    result = converse(system, _user(input_wav, system.sample_rate))
    return _write(out_dir, input_wav, system.sample_rate, system.frame_size, result)


def run_files(system: BatchedDuplexSystem, inputs: list, out_dirs: list) -> Iterator[dict]:
    """``run_file`` for many items at once, as sessions of one batched system: yields each item's
    stats as it ends (in the order they end). Each item's output is aligned as ``run_file`` aligns it;
    its step times are those of steps that served ``system.batch_size`` sessions."""
    sr, F = system.sample_rate, system.frame_size
    users = (_user(p, sr) for p in inputs)
    for i, result in converse_many(system, users):
        yield _write(out_dirs[i], inputs[i], sr, F, result)
