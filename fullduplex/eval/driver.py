"""Run a DuplexSystem over one item's input.wav and write its time-aligned output next to the
item's record: output.wav (system rate, same length as the input), output_text.json (timed text
pieces) and timing.json (step times). The stepping itself is ``fullduplex.systems.converse``
(Full-Duplex-Bench's time alignment: the frame returned after input frame k is written at
[(k+1)F, (k+2)F), output cut to the input's length)."""

from __future__ import annotations

from pathlib import Path

from fullduplex.audio import read, resample, write
from fullduplex.data.format import write_json
from fullduplex.systems import DuplexSystem
from fullduplex.systems.converse import converse


def run_file(system: DuplexSystem, input_wav: str | Path, out_dir: str | Path) -> dict:
    """Returns converse's stats (frames, wall_s, step_ms_p50, step_ms_p99, realtime_factor)."""
    x, sr = read(input_wav, channels=1, mix=True)
    audio, text, stats = converse(system, resample(x[0], sr, system.sample_rate))
    d = Path(out_dir)
    write(d / "output.wav", audio, system.sample_rate)
    write_json(d / "output_text.json", text)
    write_json(d / "timing.json", dict(stats, frame_s=system.frame_size / system.sample_rate))
    return stats
