"""End to end in real headless Chromium: the page connects, streams the (fake) microphone, receives
and plays the system's audio and shows its text."""

import asyncio
import json
import time

import numpy as np
import pytest

from fullduplex.audio import write
from fullduplex.server.app import ENGINE
from fullduplex.systems.model import BatchedModelSystem

from cdp import Browser, chromium_binary
from server_helpers import serving

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="needs Debian's chromium (scripts/install.sh)")


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory):
    from fullduplex.engines.tts import synthesize

    try:
        audio, sr, _ = synthesize("Hello there. Can you hear me? Tell me about the weather today.", "flite-slt")
    except Exception:  # no TTS voice: a chirp is enough for the plumbing
        sr = 24_000
        t = np.arange(3 * sr) / sr
        audio = (0.3 * np.sin(2 * np.pi * (200 + 100 * t) * t)).astype(np.float32)
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    write(path, audio, sr)
    return path


def test_browser_client_end_to_end(tiny_parts, mic_wav):
    system = BatchedModelSystem(tiny_parts, batch_size=1, sampling={"seed": 3})

    async def main(host):
        async with Browser(f"http://{host}/", mic_wav) as b:
            deadline = time.monotonic() + 30
            while not await b.eval("!!document.getElementById('start') && document.readyState === 'complete'"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            await b.eval("document.getElementById('start').click()", gesture=True)
            stats = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                stats = json.loads(await b.eval("JSON.stringify(window.fdStats)"))
                if (stats["framesSent"] >= 15 and stats["framesReceived"] >= 10 and stats["played"] > 0
                        and stats["textPieces"] > 0):
                    break
                await asyncio.sleep(0.25)
            shown = await b.eval("document.getElementById('text').textContent")
            await b.eval("document.getElementById('stop').click()", gesture=True)
            await asyncio.sleep(0.3)
            state = await b.eval("window.fdStats.state")
            return stats, shown, state

    with serving(system) as (host, app):
        stats, shown, state = asyncio.run(main(host))
        engine = app[ENGINE]
        assert engine.ticks > 0
    assert stats["state"] == "live" and not stats["errors"], stats
    assert stats["framesSent"] >= 15, stats        # the microphone streamed
    assert stats["framesReceived"] >= 10, stats    # the system's audio came back
    assert stats["played"] > 0, stats              # and went through the jitter buffer to the speakers
    assert stats["textPieces"] > 0 and shown.strip(), stats  # its text is on the page
    assert state == "stopped"
