"""`fullduplex data ingest SRC --out DIR`: real conversations -> the dataset format (format.py).

SRC is a folder (searched recursively) or one file. A conversation is either
- one stereo file (left = assistant/system, right = user), or
- two mono files ``NAME.assistant.EXT`` + ``NAME.user.EXT`` (or ``NAME.left`` + ``NAME.right``).
Optional transcripts ``NAME.assistant.txt`` / ``NAME.user.txt`` (or ``.left``/``.right``) are
force-aligned (pocketsphinx); otherwise words come from ASR (faster-whisper). Speech segments come
from silero VAD per channel.

Input files are only read. OUT/ingest_report.json lists what was accepted and what was rejected
and why; conversations already in the report are skipped, so a stopped run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fullduplex.audio import AudioError, read
from fullduplex.audio.io import SUPPORTED

from .checks import Checks, run_checks
from .format import ASSISTANT, SAMPLE_RATE, USER, Item, append_manifest, write_item, write_json
from .shard import Shard, manifest_name

log = logging.getLogger(__name__)
PAIR_SUFFIXES = ((".assistant", ".user"), (".left", ".right"))


@dataclass
class Unit:
    """One conversation to ingest: a stereo file, or a (left, right) pair of mono files."""

    name: str
    files: list[Path]
    transcripts: list[Path | None] = field(default_factory=lambda: [None, None])


def find_units(src: str) -> list[Unit]:
    """Conversations under ``src``, sorted by name."""
    p = Path(src)
    if not p.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    files = sorted([p] if p.is_file() else [f for f in p.rglob("*") if f.suffix.lower() in SUPPORTED])
    units, used = [], set()
    for f in files:
        if f in used:
            continue
        stem = f.with_suffix("")
        for left, right in PAIR_SUFFIXES:
            if stem.suffix in (left, right):
                base = stem.with_suffix("")
                pair = [base.with_name(base.name + s + f.suffix) for s in (left, right)]
                txt = [base.with_name(base.name + s + ".txt") for s in (left, right)]
                used.update(pair)
                units.append(Unit(str(base.relative_to(p) if p.is_dir() else base.name), pair,
                                  [t if t.exists() else None for t in txt]))
                break
        else:
            used.add(f)
            txt = [stem.with_name(stem.name + s + ".txt") for s in PAIR_SUFFIXES[0]]
            units.append(Unit(str(stem.relative_to(p) if p.is_dir() else stem.name), [f],
                              [t if t.exists() else None for t in txt]))
    return units


def load_unit(u: Unit) -> tuple[np.ndarray, dict]:
    """Stereo float32 [2, T] at 24 kHz and notes (original rate/channels). Raises AudioError."""
    if len(u.files) == 1:
        x, sr = read(u.files[0])
        if x.shape[0] == 1:
            raise AudioError(f"mono_only: {u.files[0]} has one channel; give a stereo file or a "
                             "NAME.assistant/NAME.user pair")
        if x.shape[0] != 2:
            raise AudioError(f"channels: {u.files[0]} has {x.shape[0]} channels, expected 2")
    else:
        for f in u.files:
            if not f.exists():
                raise AudioError(f"missing_pair: {f} is missing")
        chans = [read(f, channels=1) for f in u.files]
        if chans[0][1] != chans[1][1]:
            raise AudioError(f"rate_mismatch: the pair has {chans[0][1]} and {chans[1][1]} Hz")
        n = max(c[0].shape[1] for c in chans)
        x = np.zeros((2, n), np.float32)
        for i, (c, _) in enumerate(chans):
            x[i, : c.shape[1]] = c[0]
        sr = chans[0][1]
    notes = {"source_sample_rate": sr, "source_files": [str(f) for f in u.files]}
    return x, notes


def words_for_channel(x: np.ndarray, transcript: Path | None) -> tuple[list, str]:
    """Word timings of one channel [T] at 24 kHz: forced alignment of the transcript, else ASR."""
    from fullduplex.engines import align, asr

    if transcript is not None:
        try:
            return align.align(x, SAMPLE_RATE, transcript.read_text()), "pocketsphinx-align"
        except RuntimeError as err:
            log.warning("%s: alignment failed (%s); using ASR", transcript, err)
    return asr.transcribe(x, SAMPLE_RATE), "faster-whisper-tiny.en"


def ingest_unit(u: Unit, checks: Checks, vad: str = "silero") -> tuple[Item | None, str | None]:
    """(item, None) when accepted, (None, reason) when rejected."""
    from .activity import channel_segments

    try:
        x, notes = load_unit(u)
    except AudioError as err:
        msg = str(err)
        reason = msg.split(":")[0] if msg.split(":")[0] in ("mono_only", "channels", "missing_pair",
                                                            "rate_mismatch") else "unreadable"
        return None, f"{reason}: {msg}" if reason == "unreadable" else msg
    if notes["source_sample_rate"] != SAMPLE_RATE:
        from fullduplex.audio import resample

        x = resample(x, notes["source_sample_rate"], SAMPLE_RATE)
    reason = run_checks(x, SAMPLE_RATE, checks)
    if reason:
        return None, reason
    segs = channel_segments(x, SAMPLE_RATE, vad)
    alignments, methods = [], {}
    for ch, spk in enumerate((ASSISTANT, USER)):
        ws, methods[spk] = words_for_channel(x[ch], u.transcripts[ch])
        alignments += [(w.word, (w.start, w.end), spk) for w in ws]
    meta = {"source": "ingest", "name": u.name, **notes, "word_timing": methods, "vad": vad,
            "events": [{"type": "speech", "speaker": spk, "start": round(float(s), 3), "end": round(float(e), 3)}
                       for ch, spk in enumerate((ASSISTANT, USER)) for s, e in segs[ch]]}
    meta["events"].sort(key=lambda ev: ev["start"])
    return Item(np.clip(x, -1, 1), sorted(alignments, key=lambda w: w[1][0]), meta), None


def run_ingest(src: str, out: str, shard: Shard | None = None, checks: Checks | None = None,
               vad: str = "silero", progress: bool = True) -> dict:
    """Ingest every conversation under ``src`` (this shard's share) into ``out``; returns the report."""
    from tqdm import tqdm

    shard = shard or Shard(0, 1)
    checks = checks or Checks()
    out_p, src_p = Path(out).resolve(), Path(src).resolve()
    if out_p == src_p or src_p in out_p.parents:
        raise ValueError(f"--out {out} is inside SRC {src}; write the dataset elsewhere so SRC is never touched")
    out_p.mkdir(parents=True, exist_ok=True)
    rname = "ingest_report.json" if shard.count == 1 else f"ingest_report.shard-{shard.index:04d}-of-{shard.count:04d}.json"
    rpath = out_p / rname
    report = json.loads(rpath.read_text()) if rpath.exists() else {"accepted": [], "rejected": []}
    seen = {r["name"] for r in report["accepted"] + report["rejected"]}
    units = [u for k, u in enumerate(find_units(src)) if k % shard.count == shard.index]
    for u in tqdm([u for u in units if u.name not in seen], unit="conv", disable=not progress, desc="ingest"):
        item, reason = ingest_unit(u, checks, vad)
        if item is None:
            report["rejected"].append({"name": u.name, "files": [str(f) for f in u.files], "reason": reason})
        else:
            rel = f"audio/{hashlib.sha1(u.name.encode()).hexdigest()[:8]}-{Path(u.name).name}.wav"
            entry = write_item(out_p, rel, item)
            append_manifest(out_p, [entry], manifest_name(shard))
            report["accepted"].append({"name": u.name, "path": rel, "duration": entry["duration"]})
        write_json(rpath, report)
    report["summary"] = {"accepted": len(report["accepted"]), "rejected": len(report["rejected"]),
                         "hours": round(sum(a["duration"] for a in report["accepted"]) / 3600, 4)}
    write_json(rpath, report)
    return report
