"""Per-session and server-wide numbers: frame times, drops, lag; rendered in Prometheus text format."""

from __future__ import annotations

from collections import deque

import numpy as np


class Window:
    """The last ``size`` values of a series (bounded memory) with percentiles."""

    def __init__(self, size: int = 500):
        self.values: deque[float] = deque(maxlen=size)

    def add(self, v: float) -> None:
        self.values.append(float(v))

    def pct(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.values, float), q)) if self.values else 0.0


class SessionStats:
    def __init__(self):
        self.frame_ms = Window()        # tick start -> this session's output frame queued for sending
        self.frames_in = 0              # user frames stepped
        self.frames_out = 0             # system frames sent
        self.dropped_in = 0             # user frames dropped: the input backlog was over its bound
        self.dropped_out = 0            # system frames dropped: the client did not read them in time
        self.underruns = 0              # ticks where the client's audio had not arrived (silence fed)
        self.lag_ms = 0.0               # user audio waiting to be stepped

    def as_dict(self) -> dict:
        return {"frame_ms_p50": round(self.frame_ms.pct(50), 2), "frame_ms_p99": round(self.frame_ms.pct(99), 2),
                "frames_in": self.frames_in, "frames_out": self.frames_out, "dropped_in": self.dropped_in,
                "dropped_out": self.dropped_out, "underruns": self.underruns, "lag_ms": round(self.lag_ms, 1)}


def _line(name: str, value: float, labels: dict | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def prometheus(server: dict, sessions: dict[str, SessionStats]) -> str:
    """server: flat gauges/counters; sessions: id -> stats. Returns the exposition text."""
    out = []
    help_ = {
        "fullduplex_sessions_active": ("gauge", "sessions connected"),
        "fullduplex_sessions_max": ("gauge", "session limit"),
        "fullduplex_sessions_rejected_total": ("counter", "connections refused: busy or unauthorized"),
        "fullduplex_ticks_total": ("counter", "batched steps run"),
        "fullduplex_step_ms_p50": ("gauge", "batched step time, median over recent ticks"),
        "fullduplex_step_ms_p99": ("gauge", "batched step time, p99 over recent ticks"),
        "fullduplex_tick_lag_ms": ("gauge", "how far the tick schedule is behind real time"),
        "fullduplex_protocol_errors_total": ("counter", "client messages answered with an error"),
    }
    for name, value in server.items():
        kind, text = help_.get(name, ("counter", "events the system reported") if name.endswith("_total")
                               else ("gauge", "per-turn stage time in seconds (p50 / p99 over recent turns)")
                               if name.startswith("fullduplex_turn_") else ("gauge", name))
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", _line(name, value)]
    per = [("frame_ms_p50", "gauge", "per-session frame time (tick start -> output frame queued), median"),
           ("frame_ms_p99", "gauge", "per-session frame time, p99"),
           ("dropped_in", "counter", "user frames dropped (input backlog over bound)"),
           ("dropped_out", "counter", "system frames dropped (client not reading)"),
           ("underruns", "counter", "ticks with no client audio (silence fed)"),
           ("lag_ms", "gauge", "user audio waiting to be stepped"),
           ("frames_in", "counter", "user frames stepped")]
    for key, kind, text in per:
        name = f"fullduplex_session_{key}"
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for sid, st in sessions.items():
            out.append(_line(name, st.as_dict()[key], {"session": sid}))
    return "\n".join(out) + "\n"
