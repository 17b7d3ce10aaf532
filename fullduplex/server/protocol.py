"""Moshi's WebSocket message format (docs/protocol.md): one binary message = kind byte + payload.

Kinds 0-6 are Moshi's; 0x80 is our extension for raw PCM audio (signed 16-bit little-endian mono at
24 kHz), used by the browser client when the session was opened with ``?format=pcm``.
"""

from __future__ import annotations

HANDSHAKE, AUDIO, TEXT, CONTROL, METADATA, ERROR, PING = range(7)
PCM = 0x80
KNOWN = {HANDSHAKE, AUDIO, TEXT, CONTROL, METADATA, ERROR, PING, PCM}
NAMES = {HANDSHAKE: "handshake", AUDIO: "audio", TEXT: "text", CONTROL: "control", METADATA: "metadata",
         ERROR: "error", PING: "ping", PCM: "pcm"}


class ProtocolError(ValueError):
    """A message this side cannot accept (the connection may go on)."""


def pack(kind: int, payload: bytes | str = b"") -> bytes:
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return bytes([kind]) + payload


def parse(message: bytes) -> tuple[int, bytes]:
    """bytes -> (kind, payload); empty messages are a ProtocolError, unknown kinds are returned as is."""
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise ProtocolError("expected a binary message")
    message = bytes(message)
    if not message:
        raise ProtocolError("empty message (no kind byte)")
    return message[0], message[1:]


def handshake() -> bytes:
    """Kind 0 as Moshi's Python server sends it: the single byte 0x00."""
    return pack(HANDSHAKE)
