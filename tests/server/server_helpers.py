"""Helpers for the server tests: a server in a background thread, test audio, Opus pages."""

import asyncio
import contextlib
import socket
import threading

import numpy as np
from aiohttp import web

from fullduplex.server.app import ServerConfig, make_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(system, **cfg):
    """Run the server around ``system`` in a background thread; yields (base url, app)."""
    config = ServerConfig(port=free_port(), max_sessions=system.batch_size, **cfg)
    app = make_app(system, config, system_name="test")
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", config.port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), "server did not start"
    try:
        yield f"127.0.0.1:{config.port}", app
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        asyncio.run_coroutine_threadsafe(_finish_tasks(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def _finish_tasks() -> None:
    """Let the tasks that shutdown cancelled (a session's sender, say) finish before the loop closes."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def tone(seconds: float, sr: int = 24_000, freq: float = 300.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def opus_pages(pcm: np.ndarray, frame: int = 1920) -> list[bytes]:
    """Ogg/Opus bytes per 80 ms frame, as Moshi's clients send them."""
    import sphn

    w = sphn.OpusStreamWriter(24_000)
    out = []
    for k in range(len(pcm) // frame):
        out.append(w.append_pcm(pcm[k * frame:(k + 1) * frame]))
    return out
