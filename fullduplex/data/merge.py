"""`fullduplex data merge OUT DIR1 DIR2 ...`: join shard manifests into one OUT/manifest.jsonl.

Audio stays where it is; paths are rewritten relative to OUT. Every manifest*.jsonl of each DIR is
read (shard manifests included); duplicate audio files are listed once.
"""

from __future__ import annotations

import os
from pathlib import Path

from .format import MANIFEST, read_manifest


def merge(out: str, dirs: list[str]) -> dict:
    out_p = Path(out).resolve()
    out_p.mkdir(parents=True, exist_ok=True)
    seen, lines = set(), []
    for d in dirs:
        names = sorted(p.name for p in Path(d).glob("manifest*.jsonl"))
        if not names:
            raise FileNotFoundError(f"{d}: no manifest*.jsonl to merge")
        for name in names:
            if Path(d).resolve() == out_p and name == MANIFEST:
                continue
            for e in read_manifest(d, name):
                src = (Path(d) / e["path"]).resolve()
                if src in seen:
                    continue
                seen.add(src)
                lines.append({"path": os.path.relpath(src, out_p), "duration": e["duration"]})
    tmp = out_p / f".{MANIFEST}.tmp{os.getpid()}"
    import json

    tmp.write_text("".join(json.dumps(e) + "\n" for e in lines))
    os.replace(tmp, out_p / MANIFEST)
    return {"items": len(lines), "hours": round(sum(e["duration"] for e in lines) / 3600, 4),
            "manifest": str(out_p / MANIFEST)}
