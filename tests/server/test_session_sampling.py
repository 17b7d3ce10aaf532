"""Each session's sampling settings from Moshi's query parameters, against the real server."""

import asyncio
import json

import aiohttp
import numpy as np
import pytest

from fullduplex.server import protocol as P
from fullduplex.server.app import ENGINE
from fullduplex.systems.model import BatchedModelSystem
from fullduplex.systems.registry import EchoSystem

from server_helpers import serving, tone

DEFAULTS = dict(temp=0.8, temp_text=0.7, top_k=250, top_k_text=25, use_sampling=True, padding_bonus=0.0,
                onset_temp_text=None, onset_padding_bonus=None, seed=1)


def _pcm(seconds=0.4):
    x = np.clip(tone(seconds) * 32768, -32768, 32767).astype("<i2")
    return [P.pack(P.PCM, x[k:k + 1920].tobytes()) for k in range(0, len(x) - 1919, 1920)]


async def _open(s, host, **params):
    """Connect with ``params``; returns (ws, metadata dict), or (ws, error text) when refused."""
    ws = await s.ws_connect(f"ws://{host}/api/chat", params={"format": "pcm", **params})
    first = await ws.receive(timeout=10)
    if first.data[0] == P.ERROR:
        return ws, first.data[1:].decode()
    assert first.data == b"\x00"
    meta = await ws.receive(timeout=10)
    assert meta.data[0] == P.METADATA
    return ws, json.loads(meta.data[1:])


async def _frames(ws, n, timeout=30.0):
    """Send audio until ``n`` output frames came back."""
    loop = asyncio.get_running_loop()
    deadline, got = loop.time() + timeout, 0
    while got < n:
        for m in _pcm():
            await ws.send_bytes(m)
        while got < n:
            try:
                msg = await ws.receive(timeout=0.3)
            except asyncio.TimeoutError:
                break
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            got += msg.data[0] == P.PCM
        assert loop.time() < deadline, f"only {got} of {n} frames"
    return got


async def _idle(app):
    """Wait until the sessions of earlier tests have left their rows."""
    for _ in range(100):
        if app[ENGINE].active() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("sessions still open")


def _row(app, session_id):
    return next(s.row for s in app[ENGINE].slots if s is not None and s.id == session_id)


@pytest.fixture(scope="module")
def server(tiny_parts):
    system = BatchedModelSystem(tiny_parts, batch_size=2, sampling={"seed": 1})
    with serving(system) as (host, app):
        yield host, app, system


def test_two_sessions_each_get_their_own_sampling(server):
    host, app, system = server

    async def main():
        await _idle(app)
        async with aiohttp.ClientSession() as s:
            a, meta_a = await _open(s, host, text_temperature="0", audio_topk="5", text_seed="3")
            b, meta_b = await _open(s, host, audio_temperature="1.5", text_topk="3", audio_topk="",
                                    padding_bonus="-1.5", onset_temp_text="0.4", onset_padding_bonus="-2")
            assert meta_a["sampling"] == dict(DEFAULTS, temp_text=0.0, top_k=5)
            assert meta_b["sampling"] == dict(DEFAULTS, temp=1.5, top_k_text=3, padding_bonus=-1.5,
                                              onset_temp_text=0.4, onset_padding_bonus=-2.0)
            assert meta_a["sampling_per_session"] and meta_b["sampling_per_session"]
            assert meta_a["ignored"] == ["text_seed"] and meta_b["ignored"] == []
            await asyncio.gather(_frames(a, 4), _frames(b, 4))
            # what the rows sample with while the sessions are live is what the metadata said
            assert system.row_sampling(_row(app, meta_a["session"])) == meta_a["sampling"]
            assert system.row_sampling(_row(app, meta_b["session"])) == meta_b["sampling"]
            row_a = _row(app, meta_a["session"])
            await a.close()
            await b.close()
            # a new session on a recycled row gets the server's settings, not the last session's
            await _idle(app)
            c, meta_c = await _open(s, host)
            assert meta_c["sampling"] == DEFAULTS and meta_c["ignored"] == []
            await _frames(c, 2)
            row_c = _row(app, meta_c["session"])
            assert row_c == row_a and system.row_sampling(row_c) == DEFAULTS
            await c.close()

    asyncio.run(main())


@pytest.mark.parametrize("params, named, accepted", [
    (dict(audio_topk="100000"), "audio_topk", "[0, 64]"),
    (dict(text_topk="2.5"), "text_topk", "[0, 64]"),
    (dict(text_topk="-1"), "text_topk", "[0, 64]"),
    (dict(audio_temperature="abc"), "audio_temperature", "[0, 10]"),
    (dict(text_temperature="nan"), "text_temperature", "[0, 10]"),
    (dict(text_temperature="-0.5"), "text_temperature", "[0, 10]"),
    (dict(audio_temperature="11"), "audio_temperature", "[0, 10]"),
    (dict(audio_temperature="inf"), "audio_temperature", "[0, 10]"),
    (dict(padding_bonus="-12"), "padding_bonus", "[-10, 10]"),
    (dict(padding_bonus="x"), "padding_bonus", "[-10, 10]"),
    (dict(onset_padding_bonus="10.5"), "onset_padding_bonus", "[-10, 10]"),
    (dict(onset_temp_text="-1"), "onset_temp_text", "[0, 10]"),
])
def test_a_bad_value_is_an_error_and_a_close_while_another_session_goes_on(server, params, named, accepted):
    host, app, system = server

    async def main():
        await _idle(app)
        async with aiohttp.ClientSession() as s:
            good, meta = await _open(s, host, audio_temperature="0.5")
            await _frames(good, 2)
            errors = app[ENGINE].protocol_errors
            bad, text = await _open(s, host, **params)
            assert isinstance(text, str) and named in text and accepted in text, text
            closing = await bad.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert bad.close_code == 1008
            assert app[ENGINE].protocol_errors == errors + 1
            assert app[ENGINE].active() == 1  # the bad one never took a slot
            await _frames(good, 4)  # the good session keeps being served
            assert system.row_sampling(_row(app, meta["session"]))["temp"] == 0.5
            await good.close()

    asyncio.run(main())


def test_a_system_without_per_session_sampling_says_what_applies():
    async def main(host):
        async with aiohttp.ClientSession() as s:
            ws, meta = await _open(s, host, text_temperature="0.3", audio_topk="abc", pad_mult="0")
            assert meta["sampling_per_session"] is False and meta["sampling"] == {}
            assert meta["ignored"] == ["text_temperature", "audio_topk", "pad_mult"]
            await _frames(ws, 2)
            await ws.close()

    with serving(EchoSystem(batch_size=1)) as (host, app):
        asyncio.run(main(host))
