"""``RemoteSystem``: any server speaking Moshi's WebSocket protocol, driven as a ``DuplexSystem``.

    system = RemoteSystem("ws://gpu-box:8998/api/chat")
    system.reset()                     # connect; wait for the handshake (kind 0)
    frame = system.step(user_frame)    # send 80 ms as Ogg/Opus, return the audio that has arrived

A remote system lives in real time: ``step`` paces itself so that frame k is sent at k * 80 ms
after the first, and returns the next 80 ms of whatever audio the server has sent by then (silence
if none has come yet; audio piling up beyond ``max_buffer_s`` is dropped, oldest first). The socket
runs in a background thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from .base import Frame

HANDSHAKE, AUDIO, TEXT, ERROR = 0, 1, 2, 5


class RemoteError(RuntimeError):
    pass


class RemoteSystem:
    def __init__(self, url: str, sample_rate: int = 24_000, frame_size: int = 1_920, realtime: bool = True,
                 connect_timeout_s: float = 10.0, token: str | None = None, max_buffer_s: float = 2.0):
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"expected a ws:// or wss:// URL, got {url!r}")
        self.url, self.sample_rate, self.frame_size = url, sample_rate, frame_size
        self.realtime, self.connect_timeout_s, self.token = realtime, connect_timeout_s, token
        self.max_buffer = int(max_buffer_s * sample_rate)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ws = None
        self._session = None
        self.errors: list[str] = []
        self.metadata: list[str] = []

    # ------------------------------------------------------------------ connection
    def reset(self) -> None:
        self.close()
        import sphn

        self._writer = sphn.OpusStreamWriter(self.sample_rate)
        self._reader = sphn.OpusStreamReader(self.sample_rate)
        self._pcm = np.zeros(0, dtype=np.float32)
        self._text: list[str] = []
        self._k = 0
        self._t0: float | None = None
        self.errors, self.metadata = [], []
        self._closed_by_server = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="remote-system", daemon=True)
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)
        try:
            fut.result(timeout=self.connect_timeout_s + 1)
        except Exception as e:
            self.close()
            raise RemoteError(f"{self.url}: could not start a session: {e}") from e

    async def _connect(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self._ws = await self._session.ws_connect(self.url, headers=headers, max_msg_size=0,
                                                  timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
        msg = await asyncio.wait_for(self._ws.receive(), timeout=self.connect_timeout_s)
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            raise RemoteError(f"expected the handshake, got {msg.type.name} {msg.data!r:.80}")
        if msg.data[0] == ERROR:
            raise RemoteError(msg.data[1:].decode("utf-8", "replace"))
        if msg.data[0] != HANDSHAKE:
            raise RemoteError(f"expected the handshake (kind 0), got kind {msg.data[0]}")
        asyncio.get_running_loop().create_task(self._receive())

    async def _receive(self) -> None:
        import aiohttp

        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            kind, payload = msg.data[0], msg.data[1:]
            if kind == AUDIO:
                pcm = np.asarray(self._reader.append_bytes(payload), dtype=np.float32).reshape(-1)
                with self._lock:
                    self._pcm = np.concatenate([self._pcm, pcm])[-self.max_buffer:]
            elif kind == TEXT:
                with self._lock:
                    self._text.append(payload.decode("utf-8", "replace"))
            elif kind == ERROR:
                self.errors.append(payload.decode("utf-8", "replace"))
            elif kind == 4:
                self.metadata.append(payload.decode("utf-8", "replace"))
        self._closed_by_server = self._ws.close_code

    def close(self) -> None:
        if self._loop is None:
            return

        async def shut():
            if self._ws is not None:
                await self._ws.close()
            if self._session is not None:
                await self._session.close()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop, self._thread, self._ws, self._session = None, None, None, None

    # ------------------------------------------------------------------ one frame
    def step(self, user: np.ndarray) -> Frame:
        if self._loop is None:
            raise RemoteError("call reset() first (it connects)")
        if self._closed_by_server is not None:
            raise RemoteError(f"the server closed the session (code {self._closed_by_server}): {self.errors[-1:]}")
        F = self.frame_size
        user = np.asarray(user, dtype=np.float32).reshape(-1)
        if user.shape[0] != F:
            raise ValueError(f"expected {F} samples, got {user.shape[0]}")
        if self._t0 is None:
            self._t0 = time.monotonic()
        data = self._writer.append_pcm(user)
        if data:
            asyncio.run_coroutine_threadsafe(self._ws.send_bytes(bytes([AUDIO]) + data), self._loop).result(timeout=5)
        self._k += 1
        if self.realtime:  # the next frame of the user is complete one frame later
            delay = self._t0 + self._k * F / self.sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        with self._lock:
            take = self._pcm[:F]
            self._pcm = self._pcm[F:]
            text, self._text = "".join(self._text), []
        audio = np.zeros(F, dtype=np.float32)
        audio[: take.shape[0]] = take
        return Frame(audio, text, {"buffered_samples": int(self._pcm.shape[0])})
