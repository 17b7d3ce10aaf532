"""The two-channel conversation dataset (shared/DESIGN.md), readable by Kyutai's fine-tuning code.

    DIR/manifest.jsonl        {"path": "audio/000001.wav", "duration": 61.2} per line, paths relative
    DIR/audio/000001.wav      stereo, 24 kHz, left (channel 0) = assistant, right (channel 1) = user
    DIR/audio/000001.json     {"alignments": [[word, [start_s, end_s], speaker], ...],
                               "events": [...], "voices": {...}, "seed": ..., ...}

Speakers in alignments are "SPEAKER_MAIN" (the assistant, left) and "SPEAKER_OTHER" (the user,
right). Later steps (tokenization) read only this layout, so anything written here trains there.
Every file is written to a temporary name and renamed, so a crash never leaves half an item.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fullduplex.audio import AudioError, info, read, write

SAMPLE_RATE = 24_000
ASSISTANT, USER = "SPEAKER_MAIN", "SPEAKER_OTHER"
CHANNEL = {ASSISTANT: 0, USER: 1}
MANIFEST = "manifest.jsonl"


@dataclass
class Item:
    """One conversation: stereo audio [2, T] at 24 kHz and its metadata.

    ``alignments``: [(word, (start_s, end_s), speaker)] sorted by start.
    ``meta``: everything else written to the JSON (events, voices, seed, tasks, source, ...).
    """

    audio: np.ndarray
    alignments: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.audio.shape[1] / SAMPLE_RATE


def write_json(path: str | os.PathLike, obj) -> None:
    """Atomic JSON write (temporary file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"))
    os.replace(tmp, p)


def write_item(root: str | os.PathLike, rel_path: str, item: Item) -> dict:
    """Write item audio + JSON under ``root``; returns its manifest entry (not yet appended)."""
    if item.audio.ndim != 2 or item.audio.shape[0] != 2:
        raise AudioError(f"a conversation must be stereo [2, T], got shape {item.audio.shape}")
    wav = Path(root) / rel_path
    doc = {"alignments": [[w, [round(float(s), 3), round(float(e), 3)], spk] for w, (s, e), spk in item.alignments]}
    doc.update(item.meta)
    write_json(wav.with_suffix(".json"), doc)  # JSON first: an audio file on disk implies its JSON is there
    write(wav, item.audio, SAMPLE_RATE)
    return {"path": rel_path, "duration": round(item.duration, 3)}


def read_item(root: str | os.PathLike, rel_path: str, with_audio: bool = True) -> Item:
    wav = Path(root) / rel_path
    with open(wav.with_suffix(".json")) as f:
        doc = json.load(f)
    al = [(w, (float(se[0]), float(se[1])), spk) for w, se, spk in doc.pop("alignments")]
    audio = read(wav, SAMPLE_RATE, channels=2)[0] if with_audio else np.zeros((2, 0), np.float32)
    return Item(audio, al, doc)


def append_manifest(root: str | os.PathLike, entries: list[dict], name: str = MANIFEST) -> None:
    """Append lines to a manifest (one write call per batch, flushed and fsynced)."""
    if not entries:
        return
    with open(Path(root) / name, "a") as f:
        f.write("".join(json.dumps(e) + "\n" for e in entries))
        f.flush()
        os.fsync(f.fileno())


def read_manifest(root: str | os.PathLike, name: str = MANIFEST) -> list[dict]:
    """Entries of DIR/manifest.jsonl; a torn last line (crash while appending) is ignored."""
    p = Path(root) / name
    if not p.exists():
        raise FileNotFoundError(f"{p}: no manifest; is {root} a conversation dataset folder?")
    return read_jsonl(p)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a .jsonl file, one a line; a torn line (a crash while appending) is skipped."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def validate(root: str | os.PathLike) -> list[str]:
    """Problems found in a dataset folder (empty list = valid)."""
    problems = []
    for e in read_manifest(root):
        wav = Path(root) / e["path"]
        try:
            i = info(wav)
        except AudioError as err:
            problems.append(str(err))
            continue
        if i.channels != 2 or i.sample_rate != SAMPLE_RATE:
            problems.append(f"{wav}: {i.channels} ch at {i.sample_rate} Hz, expected 2 ch at {SAMPLE_RATE}")
        if abs(i.duration - e["duration"]) > 0.01:
            problems.append(f"{wav}: duration {i.duration:.3f} s but manifest says {e['duration']}")
        js = wav.with_suffix(".json")
        if not js.exists():
            problems.append(f"{js}: missing alignment JSON")
            continue
        doc = json.loads(js.read_text())
        for w in doc.get("alignments", []):
            ok = (len(w) == 3 and isinstance(w[0], str) and w[2] in CHANNEL
                  and 0 <= w[1][0] <= w[1][1] <= i.duration + 0.05)
            if not ok:
                problems.append(f"{js}: bad alignment entry {w}")
                break
    return problems
