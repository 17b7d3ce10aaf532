"""Text LLMs for the cascade: a streaming client for any OpenAI-compatible chat-completions endpoint.

    llm = OpenAIChat("http://127.0.0.1:8000/v1", model="smollm2")
    for piece in llm.stream([{"role": "user", "content": "Hi!"}], max_tokens=40):
        print(piece, end="")

Every chat LLM the cascade uses (this client, or the local SmolLM2 in ``systems/cascade_llm.py``)
has the same small interface: ``stream(messages, max_tokens, cancelled=None)`` yields text pieces
as they are generated and stops early when ``cancelled()`` turns true.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Callable, Iterator, Protocol

Messages = list[dict[str, str]]


class ChatLLM(Protocol):
    def stream(self, messages: Messages, max_tokens: int = 64,
               cancelled: Callable[[], bool] | None = None) -> Iterator[str]:
        """Yield the reply's text pieces as they come."""


class OpenAIChat:
    """Streaming ``POST {url}/chat/completions`` (server-sent events), standard library only.

    Args:
        url: the API base, e.g. ``http://localhost:8000/v1`` (``/chat/completions`` is appended
            unless the URL already ends with it).
        model: the model name the server expects.
        api_key: sent as a bearer token; defaults to ``$OPENAI_API_KEY`` when set.
    """

    def __init__(self, url: str, model: str = "default", api_key: str | None = None,
                 temperature: float = 0.0, timeout: float = 30.0):
        url = url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model, self.temperature, self.timeout = model, temperature, timeout
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")

    def stream(self, messages: Messages, max_tokens: int = 64,
               cancelled: Callable[[], bool] | None = None) -> Iterator[str]:
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": max_tokens,
                           "temperature": self.temperature, "stream": True}).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"LLM endpoint {self.url} answered {e.code}: {e.read()[:300]!r}") from e
        except urllib.error.URLError as e:
            raise RuntimeError(f"cannot reach the LLM endpoint {self.url}: {e.reason}") from e
        with resp:
            for raw in resp:
                if cancelled is not None and cancelled():
                    return
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                piece = _delta_text(json.loads(data))
                if piece:
                    yield piece


def _delta_text(event: dict) -> str:
    """The text of one streamed chat-completion chunk (empty for role-only or final chunks)."""
    choices = event.get("choices") or []
    if not choices:
        return ""
    delta = choices[0].get("delta") or {}
    return delta.get("content") or ""
