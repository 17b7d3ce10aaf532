"""One connected conversation: its batch row, audio codecs in and out, bounded queues, its numbers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque

import numpy as np

from . import protocol as P
from .metrics import SessionStats


class Session:
    """Audio in (Ogg/Opus or PCM) -> 80 ms frames for the engine; the engine's frames -> messages out.

    Bounds: at most ``max_backlog`` user frames wait to be stepped (older ones are dropped) and at
    most ``max_out`` messages wait to be sent (newer ones are dropped while the client is not reading).
    """

    def __init__(self, row: int, frame_size: int, sample_rate: int, fmt: str = "opus",
                 max_backlog: int = 25, max_out: int = 64, sampling: dict | None = None):
        import sphn

        if fmt not in ("opus", "pcm"):
            raise ValueError(f"unknown audio format {fmt!r}: use opus or pcm")
        self.id = uuid.uuid4().hex[:8]
        self.row, self.frame_size, self.sample_rate, self.fmt = row, frame_size, sample_rate, fmt
        self.reader = sphn.OpusStreamReader(sample_rate)
        self.writer = sphn.OpusStreamWriter(sample_rate) if fmt == "opus" else None
        self.pending = np.zeros(0, dtype=np.float32)  # decoded samples not yet a whole frame
        self.frames: deque[tuple[np.ndarray, float]] = deque()  # (frame, time it was complete)
        self.max_backlog = max_backlog
        self.sampling = dict(sampling or {})  # this session's overrides of the system's sampling settings
        self.out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max_out)
        self.stats = SessionStats()
        self.live = False          # becomes True with the first user audio: the engine then starts the row
        self.started_row = False   # the engine has reset this session's batch row
        self.closed = False
        self.started = time.monotonic()
        self.last_input = self.started

    # ------------------------------------------------------------------ input
    def add_opus(self, data: bytes) -> None:
        """Ogg/Opus bytes (any split: pages may span messages). Malformed data raises ProtocolError."""
        try:
            pcm = self.reader.append_bytes(data)
        except Exception as e:  # sphn raises ValueError on a bad capture pattern, others on bad packets
            raise P.ProtocolError(f"malformed Ogg/Opus audio: {e}") from e
        self._add_pcm(np.asarray(pcm, dtype=np.float32).reshape(-1))

    def add_pcm16(self, data: bytes) -> None:
        """Signed 16-bit little-endian mono samples at the server's rate."""
        if len(data) % 2:
            raise P.ProtocolError(f"PCM message has {len(data)} bytes: 16-bit samples need an even count")
        self._add_pcm(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)

    def _add_pcm(self, pcm: np.ndarray) -> None:
        now = time.monotonic()
        self.last_input = now
        if pcm.size == 0:
            return
        self.live = True
        buf = np.concatenate([self.pending, pcm]) if self.pending.size else pcm
        F = self.frame_size
        n = buf.shape[0] // F
        for k in range(n):
            self.frames.append((buf[k * F:(k + 1) * F].copy(), now))
        self.pending = buf[n * F:].copy()
        while len(self.frames) > self.max_backlog:
            self.frames.popleft()
            self.stats.dropped_in += 1
        self.stats.lag_ms = len(self.frames) * F / self.sample_rate * 1e3

    def next_frame(self) -> tuple[np.ndarray, float]:
        """The oldest waiting user frame, or silence (an underrun) if the client's audio is late."""
        if self.frames:
            frame, t = self.frames.popleft()
        else:
            frame, t = np.zeros(self.frame_size, dtype=np.float32), time.monotonic()
            self.stats.underruns += 1
        self.stats.frames_in += 1
        self.stats.lag_ms = len(self.frames) * self.frame_size / self.sample_rate * 1e3
        return frame, t

    # ------------------------------------------------------------------ output
    def emit(self, audio: np.ndarray, text: str, t_in: float) -> None:
        """Queue one system frame (and its text) for the client; drop it if the client is not reading."""
        if self.closed:
            return
        msgs = []
        if self.writer is not None:
            data = self.writer.append_pcm(np.asarray(audio, dtype=np.float32))
            if data:
                msgs.append(P.pack(P.AUDIO, data))
        else:
            pcm = np.clip(np.asarray(audio) * 32768.0, -32768, 32767).astype("<i2")
            msgs.append(P.pack(P.PCM, pcm.tobytes()))
        if text:
            msgs.append(P.pack(P.TEXT, text))
        for m in msgs:
            self.send_nowait(m, count=m[0] in (P.AUDIO, P.PCM))
        self.stats.frame_ms.add((time.monotonic() - t_in) * 1e3)

    def send_nowait(self, message: bytes, count: bool = False) -> bool:
        try:
            self.out.put_nowait(message)
        except asyncio.QueueFull:
            if count:
                self.stats.dropped_out += 1
            return False
        if count:
            self.stats.frames_out += 1
        return True
