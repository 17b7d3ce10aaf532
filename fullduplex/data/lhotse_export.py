"""Export a conversation dataset to lhotse manifests (JSONL, lhotse's own field names).

One Recording per conversation (two channels) and one SupervisionSegment per IPU-like run of words
of one speaker (channel 0 = assistant, 1 = user), with word alignments (times from the recording start) under ``alignment.word``.
Load with ``lhotse.load_manifest(...)`` or ``CutSet.from_manifests(...)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .format import CHANNEL, SAMPLE_RATE, read_item, read_manifest

MAX_WORD_GAP_S = 0.5


def _runs(alignments, speaker):
    runs, cur = [], []
    for w, (s, e), spk in alignments:
        if spk != speaker:
            continue
        if cur and s - cur[-1][2] > MAX_WORD_GAP_S:
            runs.append(cur)
            cur = []
        cur.append((w, s, e))
    return runs + ([cur] if cur else [])


def export_lhotse(root: str, out: str) -> tuple[Path, Path]:
    """Write OUT/recordings.jsonl and OUT/supervisions.jsonl; returns their paths."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec_p, sup_p = out_dir / "recordings.jsonl", out_dir / "supervisions.jsonl"
    with open(rec_p, "w") as rf, open(sup_p, "w") as sf:
        for e in read_manifest(root):
            rid = Path(e["path"]).with_suffix("").as_posix().replace("/", "_")
            n = int(round(e["duration"] * SAMPLE_RATE))
            src = str((Path(root) / e["path"]).resolve())
            rf.write(json.dumps({"id": rid, "sources": [{"type": "file", "channels": [0, 1], "source": src}],
                                 "sampling_rate": SAMPLE_RATE, "num_samples": n, "duration": e["duration"],
                                 "channel_ids": [0, 1]}) + "\n")
            item = read_item(root, e["path"], with_audio=False)
            for spk, ch in CHANNEL.items():
                for k, run in enumerate(_runs(item.alignments, spk)):
                    s0, e0 = run[0][1], run[-1][2]
                    sf.write(json.dumps({
                        "id": f"{rid}-{ch}-{k:04d}", "recording_id": rid, "start": round(s0, 3),
                        "duration": round(e0 - s0, 3), "channel": ch, "text": " ".join(w for w, _, _ in run),
                        "language": "en", "speaker": spk,
                        "alignment": {"word": [[w, round(s, 3), round(e - s, 3), 1.0] for w, s, e in run]},
                    }) + "\n")
    return rec_p, sup_p
