"""The clock of the server: every 80 ms, one batched step for all live sessions.

Sessions own rows of one ``BatchedDuplexSystem`` (and, on a system with ``set_sampling``, their own
sampling settings, applied whenever their row restarts). A tick takes one frame per live session (silence
if its audio is late), steps the whole batch once in a worker thread (the event loop keeps serving
sockets meanwhile) and hands each session its output frame. When a step takes longer than a frame
the schedule falls behind (``tick_lag_ms``); past one second it is resynchronised and the sessions'
input backlogs absorb (and, past their bound, drop) the difference.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .metrics import Window
from .session import Session

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """Every session slot is taken."""


class Engine:
    def __init__(self, system, max_sessions: int, log_every_s: float = 10.0):
        if max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        if getattr(system, "batch_size", max_sessions) != max_sessions:
            raise ValueError(f"the system steps {system.batch_size} sessions, the server allows {max_sessions}")
        self.system = system
        self.max_sessions = max_sessions
        self.frame_size, self.sample_rate = system.frame_size, system.sample_rate
        self.frame_s = self.frame_size / self.sample_rate
        self.slots: list[Session | None] = [None] * max_sessions
        self.step_ms = Window()
        self.ticks = 0
        self.tick_lag_ms = 0.0
        self.rejected = 0
        self.protocol_errors = 0
        self.turn_stages: dict[str, Window] = {}  # per-turn stage timings some systems report (a cascade)
        self.system_events: dict[str, int] = {}  # counts of the events systems report (barge_in, ...)
        self.log_every_s = log_every_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fullduplex-step")
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ sessions
    def open(self, fmt: str = "opus", sampling: dict | None = None) -> Session:
        """A session on a free row; ``sampling``: its overrides of the system's sampling settings
        (checked by the caller; given to a system with ``set_sampling`` whenever its row restarts)."""
        for row, s in enumerate(self.slots):
            if s is None:
                sess = Session(row, self.frame_size, self.sample_rate, fmt, sampling=sampling)
                self.slots[row] = sess
                log.info("session %s opened (row %d, %s, %d/%d in use)", sess.id, row, fmt, self.active(),
                         self.max_sessions)
                return sess
        self.rejected += 1
        raise Busy(f"server busy: all {self.max_sessions} sessions are in use; try again later")

    def close(self, sess: Session) -> None:
        sess.closed = True
        if 0 <= sess.row < len(self.slots) and self.slots[sess.row] is sess:
            self.slots[sess.row] = None
            log.info("session %s closed after %.1f s: %s", sess.id, time.monotonic() - sess.started,
                     sess.stats.as_dict())

    def active(self) -> int:
        return sum(s is not None for s in self.slots)

    # ------------------------------------------------------------------ the clock
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        # let a step in flight finish before the system is released
        await asyncio.get_running_loop().run_in_executor(None, lambda: self._executor.shutdown(wait=True, cancel_futures=True))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        last_log = next_t
        while True:
            next_t += self.frame_s
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.tick_lag_ms = max(0.0, (loop.time() - next_t) * 1e3)
            if self.tick_lag_ms > 1000:
                log.warning("steps are %.0f ms behind real time; resynchronising the clock", self.tick_lag_ms)
                next_t = loop.time()
            try:
                await self.tick()
            except Exception:  # a failing step must not stop the server: log it, restart all rows
                log.exception("step failed; restarting all sessions' model state")
                self.system.reset()
                for s in self.slots:
                    if s is not None:
                        s.started_row = False
            if loop.time() - last_log > self.log_every_s:
                last_log = loop.time()
                if self.active():
                    log.info("%d sessions, step p50 %.1f ms p99 %.1f ms, lag %.0f ms; %s", self.active(),
                             self.step_ms.pct(50), self.step_ms.pct(99), self.tick_lag_ms,
                             {s.id: s.stats.as_dict() for s in self.slots if s is not None})

    async def tick(self) -> None:
        live = [s for s in self.slots if s is not None and s.live and not s.closed]
        if not live:
            return
        B, F = self.max_sessions, self.frame_size
        user = np.zeros((B, F), dtype=np.float32)
        active = [False] * B
        t_in = {}
        t_tick = time.monotonic()
        for s in live:
            if not s.started_row:
                self.system.reset(s.row)  # also the system's own sampling settings
                if s.sampling:
                    self.system.set_sampling(s.row, s.sampling)
                s.started_row = True
            user[s.row], _ = s.next_frame()
            t_in[s.row] = t_tick
            active[s.row] = True
        t0 = time.perf_counter()
        frames = await asyncio.get_running_loop().run_in_executor(self._executor, self.system.step, user, active)
        self.step_ms.add((time.perf_counter() - t0) * 1e3)
        self.ticks += 1
        for s in live:
            if self.slots[s.row] is s:  # still connected
                f = frames[s.row]
                s.emit(f.audio, f.text, t_in[s.row])
                if f.info:
                    self._record_info(f.info)

    def _record_info(self, info: dict) -> None:
        """Keep a system's per-turn stage timings (info["turn"]) and count its events (info["events"])."""
        for stage, value in (info.get("turn") or {}).items():
            if isinstance(value, (int, float)) and stage.endswith("_s"):
                self.turn_stages.setdefault(stage, Window()).add(value)
        for ev in info.get("events") or []:
            name = str(ev.get("event", "event")) if isinstance(ev, dict) else str(ev)
            self.system_events[name] = self.system_events.get(name, 0) + 1

    def server_metrics(self) -> dict:
        return {"fullduplex_sessions_active": self.active(), "fullduplex_sessions_max": self.max_sessions,
                "fullduplex_sessions_rejected_total": self.rejected, "fullduplex_ticks_total": self.ticks,
                "fullduplex_step_ms_p50": round(self.step_ms.pct(50), 2),
                "fullduplex_step_ms_p99": round(self.step_ms.pct(99), 2),
                "fullduplex_tick_lag_ms": round(self.tick_lag_ms, 1),
                "fullduplex_protocol_errors_total": self.protocol_errors,
                **{f"fullduplex_turn_{stage}_p50": round(w.pct(50), 3) for stage, w in self.turn_stages.items()},
                **{f"fullduplex_turn_{stage}_p99": round(w.pct(99), 3) for stage, w in self.turn_stages.items()},
                **{f"fullduplex_system_{name}_total": n for name, n in self.system_events.items()}}
