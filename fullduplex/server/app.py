"""``fullduplex serve``: the aiohttp application.

    GET /            the browser client (static files, served from this package; no CDN)
    GET /api/chat    WebSocket, Moshi's protocol (docs/protocol.md); ?format=pcm for raw PCM audio;
                     Moshi's text_temperature, text_topk, audio_temperature, audio_topk set the session's sampling
    GET /metrics     Prometheus text: sessions, step time, per-session frame time p50/p99, drops, lag
    GET /healthz     "ok"

Client input never crashes the server: bad messages are answered with an error message (kind 5),
unrecoverable ones (undecodable audio, too many messages, idle clients) also close that session.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import WSMsgType, web

from . import protocol as P
from . import sampling as S
from .engine import Busy, Engine
from .metrics import prometheus

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"

CONFIG = web.AppKey("config", object)
ENGINE = web.AppKey("engine", object)
SAMPLING = web.AppKey("sampling", dict)
SYSTEM_NAME = web.AppKey("system_name", str)

# WebSocket close codes (RFC 6455)
POLICY_VIOLATION, INVALID_DATA, TRY_AGAIN_LATER = 1008, 1007, 1013


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8998
    max_sessions: int = 4
    auth_token: str | None = None
    idle_timeout_s: float = 30.0
    max_message_bytes: int = 256 * 1024
    max_messages_per_s: float = 200.0
    send_stall_s: float = 10.0  # a client that reads nothing for this long is disconnected
    socket_send_buffer: int = 64 * 1024  # per-connection kernel send buffer: bounds memory, shows stalls early


class RateLimit:
    """Token bucket: ``rate`` messages per second, bursts up to one second's worth."""

    def __init__(self, rate: float):
        self.rate, self.tokens, self.t = rate, rate, time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _authorized(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.query.get("token") or ""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header[len("Bearer "):]
    return hmac.compare_digest(given.encode(), token.encode())


async def _sender(ws: web.WebSocketResponse, sess, engine: Engine, cfg: ServerConfig, on_stall) -> None:
    """Send the session's queued messages; give up on a client that stays unwritable."""
    while True:
        msg = await sess.out.get()
        try:
            await asyncio.wait_for(ws.send_bytes(msg), timeout=cfg.send_stall_s)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            log.info("session %s: client not reading for %.0f s; closing", sess.id, cfg.send_stall_s)
            engine.close(sess)  # frees the slot now, whatever the socket does next
            on_stall()
            return


async def chat(request: web.Request) -> web.StreamResponse:
    app = request.app
    cfg: ServerConfig = app[CONFIG]
    engine: Engine = app[ENGINE]
    if not _authorized(request, cfg.auth_token):
        engine.rejected += 1
        return web.Response(status=401, text="unauthorized: give ?token=... or an Authorization: Bearer header\n")
    fmt = request.query.get("format", "opus")
    ws = web.WebSocketResponse(max_msg_size=cfg.max_message_bytes, timeout=2.0)
    await ws.prepare(request)
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None and cfg.socket_send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.socket_send_buffer)
    if fmt not in ("opus", "pcm"):
        await ws.send_bytes(P.pack(P.ERROR, f"unknown format {fmt!r}: use opus (default) or pcm"))
        await ws.close(code=POLICY_VIOLATION)
        return ws
    per_session = all(callable(getattr(engine.system, n, None))
                      for n in ("set_sampling", "effective_sampling", "sampling_limits"))
    ignored = S.given(request.query)
    overrides: dict = {}
    if per_session:  # this session's own sampling settings; bad ones end it before it takes a slot
        try:
            overrides = S.parse_query(request.query, engine.system.sampling_limits())
            sampling = engine.system.effective_sampling(overrides)
        except ValueError as e:
            engine.protocol_errors += 1
            await ws.send_bytes(P.pack(P.ERROR, str(e)))
            await ws.close(code=POLICY_VIOLATION, message=str(e).encode("ascii", "replace")[:120])
            return ws
        ignored = [n for n in ignored if n not in S.QUERY]
    else:  # the system samples one way for everyone (or not at all): say so
        sampling = app[SAMPLING]
    try:
        sess = engine.open(fmt, sampling=overrides)
    except Busy as e:
        await ws.send_bytes(P.pack(P.ERROR, str(e)))
        await ws.close(code=TRY_AGAIN_LATER, message=b"busy")
        return ws
    loop = asyncio.get_running_loop()
    sess.send_nowait(P.handshake())
    sess.send_nowait(P.pack(P.METADATA, json.dumps({
        "session": sess.id, "sample_rate": engine.sample_rate, "frame_size": engine.frame_size,
        "format": fmt, "sampling": sampling, "sampling_per_session": per_session, "ignored": ignored,
        "system": app[SYSTEM_NAME]})))
    receiver = loop.create_task(_receive(ws, sess, engine, cfg, RateLimit(cfg.max_messages_per_s)))
    sender = loop.create_task(_sender(ws, sess, engine, cfg, receiver.cancel))
    try:
        await receiver
    except asyncio.CancelledError:
        if not sess.closed:  # the handler itself was cancelled (server shutdown)
            raise
    finally:
        engine.close(sess)
        sender.cancel()
        if not ws.closed:
            try:  # a client that does not read cannot take the close frame either
                await asyncio.wait_for(ws.close(code=POLICY_VIOLATION if sess.stats.dropped_out else 1000), 2.0)
            except (asyncio.TimeoutError, ConnectionError, RuntimeError):
                if request.transport is not None:
                    request.transport.abort()
    return ws


async def _receive(ws, sess, engine: Engine, cfg: ServerConfig, limit: RateLimit) -> None:
    async def error(text: str, close_code: int | None = None) -> None:
        engine.protocol_errors += 1
        sess.send_nowait(P.pack(P.ERROR, text))
        if close_code is not None:
            await asyncio.sleep(0.05)  # let the sender deliver the error first
            sess.closed = True
            await ws.close(code=close_code, message=text[:100].encode())

    while not sess.closed and not ws.closed:
        try:
            msg = await ws.receive(timeout=cfg.idle_timeout_s)
        except asyncio.TimeoutError:
            await error(f"idle for {cfg.idle_timeout_s:g} s; closing", POLICY_VIOLATION)
            return
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
        if msg.type == WSMsgType.ERROR:  # e.g. a message over max_msg_size: aiohttp closes with 1009
            engine.protocol_errors += 1
            log.info("session %s: websocket error %s", sess.id, ws.exception())
            return
        if not limit.allow():
            await error(f"more than {cfg.max_messages_per_s:g} messages per second; closing", POLICY_VIOLATION)
            return
        if msg.type != WSMsgType.BINARY:
            await error("expected binary messages (kind byte + payload)")
            continue
        try:
            kind, payload = P.parse(msg.data)
            if kind == P.AUDIO:
                sess.add_opus(payload)
            elif kind == P.PCM:
                sess.add_pcm16(payload)
            elif kind in (P.PING, P.CONTROL, P.METADATA, P.TEXT, P.HANDSHAKE):
                sess.last_input = time.monotonic()  # accepted; nothing to do in full duplex
            else:
                await error(f"unknown message kind {kind:#04x}; ignored")
        except P.ProtocolError as e:
            fatal = "Ogg/Opus" in str(e)
            await error(str(e), INVALID_DATA if fatal else None)
            if fatal:
                return


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def metrics(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    sessions = {s.id: s.stats for s in engine.slots if s is not None}
    return web.Response(text=prometheus(engine.server_metrics(), sessions),
                        content_type="text/plain", charset="utf-8", headers={"X-Prometheus-Version": "0.0.4"})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def make_app(system, cfg: ServerConfig, sampling: dict | None = None, system_name: str = "") -> web.Application:
    """The application around a batched system (its batch_size = cfg.max_sessions)."""
    app = web.Application(client_max_size=cfg.max_message_bytes)
    app[CONFIG] = cfg
    app[ENGINE] = Engine(system, cfg.max_sessions)
    app[SAMPLING] = sampling or getattr(system, "sampling", {})
    app[SYSTEM_NAME] = system_name
    app.router.add_get("/", index)
    app.router.add_get("/api/chat", chat)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC, show_index=False)

    async def on_startup(app):
        app[ENGINE].start()

    async def on_cleanup(app):
        await app[ENGINE].stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def run_server(cfg: ServerConfig, system: str = "default", checkpoint: str | None = None,
               sampling: dict | None = None, int8: bool = False, threads: int | None = None) -> None:
    from ..systems.registry import make_batched_system

    batched = make_batched_system(system, cfg.max_sessions, checkpoint, sampling=sampling, int8=int8,
                                  threads=threads)
    app = make_app(batched, cfg, system_name=system)
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and cfg.auth_token is None:
        log.warning("serving on %s without --auth-token: anyone who can reach the port can talk to it", cfg.host)
    print(f"fullduplex: serving {system} on http://{cfg.host}:{cfg.port}/ (WebSocket /api/chat, "
          f"{cfg.max_sessions} sessions, metrics at /metrics)", flush=True)
    web.run_app(app, host=cfg.host, port=cfg.port, print=None, shutdown_timeout=5.0)
