"""`--shard I/N`: which item indices a process owns, and the manifest it writes."""

from __future__ import annotations

from dataclasses import dataclass

from .format import MANIFEST


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def indices(self, n: int) -> range:
        return range(self.index, n, self.count)


def parse_shard(text: str | None) -> Shard:
    """'3/8' -> Shard(3, 8); None -> the whole job."""
    if not text:
        return Shard(0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= I < N")
    return Shard(i, n)


def manifest_name(shard: Shard) -> str:
    """manifest.jsonl for a whole job; manifest.shard-0003-of-0008.jsonl for a shard (see merge)."""
    if shard.count == 1:
        return MANIFEST
    return f"manifest.shard-{shard.index:04d}-of-{shard.count:04d}.jsonl"
