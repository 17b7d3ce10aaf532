"""Headless Chromium driven over the Chrome DevTools protocol (a WebSocket, spoken with aiohttp)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
         "--remote-debugging-port=0"]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """``async with Browser(url, mic_wav) as b: await b.eval("1 + 1")``."""

    def __init__(self, url: str, mic_wav: str | Path):
        self.url, self.mic_wav = url, str(mic_wav)
        self._ids = itertools.count(1)

    async def __aenter__(self):
        self.profile = tempfile.mkdtemp(prefix="fd-chromium-")
        cmd = [chromium_binary(), *FLAGS, f"--use-file-for-fake-audio-capture={self.mic_wav}",
               f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {self.proc.stderr.read().decode()[-2000:]}")
            await asyncio.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        self.http = aiohttp.ClientSession()
        page = None
        while page is None and time.monotonic() < deadline:
            async with self.http.get(f"http://127.0.0.1:{port}/json") as r:
                page = next((t for t in await r.json() if t.get("type") == "page"), None)
            if page is None:
                await asyncio.sleep(0.2)
        self.ws = await self.http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.navigate", url=self.url)
        return self

    async def call(self, method: str, **params):
        i = next(self._ids)
        await self.ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive(timeout=30)).data)
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def eval(self, expression: str, gesture: bool = False):
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True,
                              userGesture=gesture)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def __aexit__(self, *exc):
        try:
            await self.ws.close()
            await self.http.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
