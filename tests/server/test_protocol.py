"""A Python client speaking Moshi's protocol (Ogg/Opus via sphn) against the server."""

import asyncio
import json

import aiohttp
import numpy as np

from fullduplex.server import protocol as P
from fullduplex.server.app import ENGINE
from fullduplex.systems.model import BatchedModelSystem
from fullduplex.systems.remote import RemoteSystem

from server_helpers import opus_pages, serving, tone


def test_remote_system_talks_to_the_model_server(tiny_parts):
    system = BatchedModelSystem(tiny_parts, batch_size=2, sampling={"seed": 1})
    with serving(system) as (host, app):
        remote = RemoteSystem(f"ws://{host}/api/chat")
        remote.reset()
        x = tone(2.0)
        frames = [remote.step(x[k * 1920:(k + 1) * 1920]) for k in range(len(x) // 1920)]
        remote.close()
        assert not remote.errors
        meta = json.loads(remote.metadata[0])
        assert meta["sample_rate"] == 24_000 and meta["frame_size"] == 1920
        audio = np.concatenate([f.audio for f in frames])
        assert np.isfinite(audio).all() and audio.shape == (len(frames) * 1920,)
        assert np.abs(audio).max() > 0  # the model's audio came back through Opus
        engine = app[ENGINE]
        assert engine.ticks > 0


def test_raw_moshi_messages(tiny_parts):
    """Handshake first; audio answered with Ogg/Opus pages (the first one carries OpusHead); text as UTF-8."""
    import sphn

    system = BatchedModelSystem(tiny_parts, batch_size=1, sampling={"seed": 2})

    async def client(host):
        async with aiohttp.ClientSession() as s, s.ws_connect(f"ws://{host}/api/chat") as ws:
            first = await ws.receive_bytes(timeout=10)
            assert first == b"\x00"
            for page in opus_pages(tone(1.2)):
                await ws.send_bytes(P.pack(P.AUDIO, page))
                await asyncio.sleep(0.02)
            audio, kinds = [], set()
            reader = sphn.OpusStreamReader(24_000)
            deadline = asyncio.get_running_loop().time() + 20
            while len(audio) < 8 and asyncio.get_running_loop().time() < deadline:
                msg = await ws.receive_bytes(timeout=10)
                kinds.add(msg[0])
                if msg[0] == P.AUDIO:
                    if not audio:
                        assert b"OpusHead" in msg
                    audio.append(reader.append_bytes(msg[1:]))
                elif msg[0] == P.TEXT:
                    msg[1:].decode("utf-8")
            return audio, kinds

    with serving(system) as (host, app):
        audio, kinds = asyncio.run(client(host))
    assert len(audio) >= 8
    assert kinds <= {P.AUDIO, P.TEXT, P.METADATA}
