"""Bad clients: the server answers with errors, keeps serving the others, and its memory stays bounded."""

import asyncio
import base64
import os
import socket
import struct
import time

import aiohttp
import pytest

from fullduplex.server import protocol as P
from fullduplex.server.app import ENGINE
from fullduplex.systems.registry import EchoSystem

from server_helpers import opus_pages, serving, tone


async def _connect(session, host, **params):
    ws = await session.ws_connect(f"ws://{host}/api/chat", params=params or None)
    first = await ws.receive(timeout=10)
    return ws, first


async def _next_of(ws, kind, timeout=10.0):
    """The next message of ``kind`` (others skipped); None if the socket closes first."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.1, deadline - asyncio.get_running_loop().time()))
        if msg.type != aiohttp.WSMsgType.BINARY:
            return None
        if msg.data[0] == kind:
            return msg.data


async def _healthy(session, host):
    """A fresh client is served: handshake, then its audio comes back."""
    ws, first = await _connect(session, host)
    assert first.data == b"\x00"
    for page in opus_pages(tone(0.4)):
        await ws.send_bytes(P.pack(P.AUDIO, page))
    assert await _next_of(ws, P.AUDIO) is not None
    await ws.close()


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_malformed_messages_get_errors_and_others_keep_being_served():
    async def main(host):
        async with aiohttp.ClientSession() as s:
            other, _ = await _connect(s, host)
            ws, first = await _connect(s, host)
            assert first.data == b"\x00"
            await ws.send_bytes(b"")                       # no kind byte
            assert b"empty" in (await _next_of(ws, P.ERROR))
            await ws.send_bytes(b"\x42hello")              # unknown kind
            assert b"unknown message kind" in (await _next_of(ws, P.ERROR))
            await ws.send_str("hello")                     # text frame
            assert b"binary" in (await _next_of(ws, P.ERROR))
            await ws.send_bytes(P.pack(P.PCM, b"\x01\x02\x03"))  # odd PCM length
            assert b"even" in (await _next_of(ws, P.ERROR))
            await ws.send_bytes(P.pack(P.PING))            # accepted silently
            await ws.send_bytes(P.pack(P.CONTROL, b"\x00"))
            # the session still works after all that
            for page in opus_pages(tone(0.4)):
                await ws.send_bytes(P.pack(P.AUDIO, page))
            assert await _next_of(ws, P.AUDIO) is not None
            # undecodable Ogg: an error, then this session (only) is closed
            await ws.send_bytes(P.pack(P.AUDIO, b"garbage that is not an ogg page" * 4))
            assert b"Ogg" in (await _next_of(ws, P.ERROR))
            assert await _next_of(ws, P.AUDIO, timeout=5) is None
            assert ws.close_code == 1007
            # the other session was never disturbed
            for page in opus_pages(tone(0.4)):
                await other.send_bytes(P.pack(P.AUDIO, page))
            assert await _next_of(other, P.AUDIO) is not None
            await other.close()

    with serving(EchoSystem(batch_size=2)) as (host, app):
        asyncio.run(main(host))
        assert app[ENGINE].protocol_errors >= 5


def test_truncated_ogg_and_split_pages():
    async def main(host):
        async with aiohttp.ClientSession() as s:
            ws, _ = await _connect(s, host)
            pages = b"".join(opus_pages(tone(0.8)))
            cut = len(pages) // 3
            await ws.send_bytes(P.pack(P.AUDIO, pages[:cut]))      # a page cut in the middle...
            await asyncio.sleep(0.1)
            await ws.send_bytes(P.pack(P.AUDIO, pages[cut:]))      # ...completed later: fine
            assert await _next_of(ws, P.AUDIO) is not None
            await ws.send_bytes(P.pack(P.AUDIO, pages[:20]))       # truncated, then the client leaves
            await ws.close()
            await _healthy(s, host)

    with serving(EchoSystem(batch_size=1)) as (host, app):
        asyncio.run(main(host))


def test_oversized_message_closes_only_that_session():
    async def main(host):
        async with aiohttp.ClientSession() as s:
            other, _ = await _connect(s, host)
            ws, _ = await _connect(s, host)
            await ws.send_bytes(P.pack(P.PCM, b"\x00" * 64 * 1024))
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert ws.close_code == 1009  # message too big
            for page in opus_pages(tone(0.4)):
                await other.send_bytes(P.pack(P.AUDIO, page))
            assert await _next_of(other, P.AUDIO) is not None

    with serving(EchoSystem(batch_size=2), max_message_bytes=16 * 1024) as (host, app):
        asyncio.run(main(host))


def test_twice_the_session_limit_at_once():
    async def one(s, host):
        ws = await s.ws_connect(f"ws://{host}/api/chat")
        msg = await ws.receive(timeout=10)
        if msg.data[0] == P.ERROR:
            assert b"busy" in msg.data
            closing = await ws.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1013
            return "busy", None
        assert msg.data == b"\x00"
        return "ok", ws

    async def main(host):
        async with aiohttp.ClientSession() as s:
            results = await asyncio.gather(*[one(s, host) for _ in range(6)])
            kinds = sorted(r[0] for r in results)
            assert kinds == ["busy"] * 3 + ["ok"] * 3
            for _, ws in results:  # the admitted sessions are served
                if ws is not None:
                    for page in opus_pages(tone(0.4)):
                        await ws.send_bytes(P.pack(P.AUDIO, page))
                    assert await _next_of(ws, P.AUDIO) is not None
                    await ws.close()
            await asyncio.sleep(0.3)
            await _healthy(s, host)  # slots are free again

    with serving(EchoSystem(batch_size=3)) as (host, app):
        asyncio.run(main(host))
        assert app[ENGINE].rejected == 3


def test_auth_token_and_idle_timeout():
    async def main(host):
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await s.ws_connect(f"ws://{host}/api/chat")
            assert e.value.status == 401
            ws, first = await _connect(s, host, token="sesame")
            assert first.data == b"\x00"
            err = await _next_of(ws, P.ERROR, timeout=10)  # we send nothing: idle timeout
            assert b"idle" in err

    with serving(EchoSystem(batch_size=1), auth_token="sesame", idle_timeout_s=1.0) as (host, app):
        asyncio.run(main(host))


def _raw_ws_client(host: str, rcvbuf: int = 4096) -> socket.socket:
    """A WebSocket client on a plain socket with a tiny receive buffer, that will never read."""
    h, port = host.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((h, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/chat?format=pcm HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return sock


def _ws_frame(payload: bytes) -> bytes:
    """One masked binary frame (client to server)."""
    mask = os.urandom(4)
    n = len(payload)
    head = b"\x82" + (bytes([0x80 | n]) if n < 126 else struct.pack("!BH", 0x80 | 126, n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_client_that_stops_reading_is_dropped_and_memory_stays_bounded():
    async def main(host, engine):
        sock = _raw_ws_client(host)
        pcm = (tone(0.08) * 32767).astype("<i2").tobytes()
        rss0 = _rss_mb()
        async with aiohttp.ClientSession() as s:
            other, _ = await _connect(s, host)
            t0 = time.monotonic()
            sess = None
            while time.monotonic() - t0 < 25:
                # the bad client floods audio (faster than real time) and never reads
                for _ in range(10):
                    try:
                        sock.sendall(_ws_frame(P.pack(P.PCM, pcm)))
                    except OSError:
                        break
                sess = sess or next((x for x in engine.slots if x is not None and x.fmt == "pcm"), None)
                for page in opus_pages(tone(0.08)):
                    await other.send_bytes(P.pack(P.AUDIO, page))
                if sess is not None and sess.closed:
                    break
                if sess is not None:
                    assert len(sess.frames) <= sess.max_backlog and sess.out.qsize() <= sess.out.maxsize
                await asyncio.sleep(0.05)
            assert sess is not None and sess.closed, "a client that does not read must be disconnected"
            assert sess.stats.dropped_in > 0  # the flood was bounded by dropping input
            assert await _next_of(other, P.AUDIO) is not None  # the good client is still served
            await other.close()
        sock.close()
        assert _rss_mb() - rss0 < 200

    with serving(EchoSystem(batch_size=2), send_stall_s=2.0, max_messages_per_s=1000) as (host, app):
        asyncio.run(main(host, app[ENGINE]))


def test_message_rate_limit():
    async def main(host):
        async with aiohttp.ClientSession() as s:
            ws, _ = await _connect(s, host)
            for _ in range(30):
                await ws.send_bytes(P.pack(P.PING))
            assert b"messages per second" in (await _next_of(ws, P.ERROR))
            assert await _next_of(ws, P.AUDIO, timeout=5) is None
            assert ws.close_code == 1008
            await _healthy(s, host)

    with serving(EchoSystem(batch_size=1), max_messages_per_s=10) as (host, app):
        asyncio.run(main(host))


def test_metrics_in_prometheus_format():
    async def main(host):
        async with aiohttp.ClientSession() as s:
            ws, _ = await _connect(s, host)
            for page in opus_pages(tone(0.8)):
                await ws.send_bytes(P.pack(P.AUDIO, page))
            for _ in range(5):
                await _next_of(ws, P.AUDIO)
            async with s.get(f"http://{host}/metrics") as r:
                assert r.status == 200 and r.content_type == "text/plain"
                text = await r.text()
            await ws.close()
            return text

    with serving(EchoSystem(batch_size=2)) as (host, app):
        text = asyncio.run(main(host))
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    values = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines}
    assert values["fullduplex_sessions_active"] == 1 and values["fullduplex_sessions_max"] == 2
    assert values["fullduplex_ticks_total"] > 0
    for key in ("frame_ms_p50", "frame_ms_p99", "dropped_in", "dropped_out", "lag_ms", "underruns"):
        assert any(k.startswith(f"fullduplex_session_{key}{{session=") for k in values), key
    assert "# TYPE fullduplex_step_ms_p99 gauge" in text
