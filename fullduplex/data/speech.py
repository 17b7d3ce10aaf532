"""Speech-only files per voice, cut from conversation datasets: a folder a codec trains on.

    fullduplex data speech data/synth_big --out data/speech --minutes-per-voice 15 --exclude-voice pico-en-gb

For each channel of each conversation, the stretches where its speaker talks (aligned words less
than ``join_s`` apart, ``pad_s`` around them) are appended to that voice's files with ``gap_s`` of
silence between them, a new file every ``file_s`` seconds: OUT/<voice>/<voice>-<n>.<ext>. Items
are visited in a seeded random order, so a cap per voice draws from the whole dataset. A channel
holds only its own speaker, so the files have no crosstalk. `train codec` reads the folder with
``codec.data=OUT`` (train/codec_data.py); it is also a compact way to move the speech of a
dataset to another machine (FLAC halves it; most of a conversation channel is the other speaker's
turn, which is left out).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from ..audio import write
from .format import CHANNEL, SAMPLE_RATE, read_item, read_manifest

FORMATS = ("flac", "wav", "ogg")


def speech_stretches(words: list[tuple[float, float]], join_s: float, pad_s: float,
                     duration_s: float) -> list[tuple[float, float]]:
    """Sorted word (start, end) times of one speaker -> padded stretches (start_s, end_s) of speech."""
    out: list[list[float]] = []
    for a, b in sorted(words):
        if out and a - out[-1][1] < join_s:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(max(0.0, a - pad_s), min(duration_s, b + pad_s)) for a, b in out]


class _VoiceFiles:
    """Buffers one voice's speech and writes it out in files of about ``file_s`` seconds."""

    def __init__(self, folder: Path, voice: str, ext: str, file_s: float):
        self.folder, self.voice, self.ext, self.file_s = folder, voice, ext, file_s
        self.parts: list[np.ndarray] = []
        self.buffered = 0
        self.files = 0
        self.seconds = 0.0

    def add(self, x: np.ndarray, gap: np.ndarray) -> None:
        self.parts += [x, gap]
        self.buffered += len(x) + len(gap)
        self.seconds += len(x) / SAMPLE_RATE
        if self.buffered >= self.file_s * SAMPLE_RATE:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        x = np.concatenate(self.parts[:-1])  # no trailing gap
        write(self.folder / self.voice / f"{self.voice}-{self.files:05d}.{self.ext}", x, SAMPLE_RATE)
        self.files += 1
        self.parts, self.buffered = [], 0


def export_speech(dirs: list[str | Path], out: str | Path, minutes_per_voice: float | None = None,
                  exclude_voices=(), fmt: str = "flac", seed: int = 0, join_s: float = 0.4, pad_s: float = 0.15,
                  gap_s: float = 0.2, file_s: float = 30.0, progress: bool = True) -> dict:
    """Write the speech of every voice in ``dirs`` to ``out`` (see the module doc); returns a summary."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already holds files; choose an empty or new --out folder")
    items = [(Path(d), e["path"]) for d in dirs for e in read_manifest(d)]
    random.Random(seed).shuffle(items)
    cap = None if minutes_per_voice is None else 60.0 * minutes_per_voice
    gap = np.zeros(int(round(gap_s * SAMPLE_RATE)), np.float32)
    voices: dict[str, _VoiceFiles] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="speech", unit="item", dynamic_ncols=True)
    read = 0
    for root, rel in items:
        if bar is not None:
            bar.update(1)
        meta = read_item(root, rel, with_audio=False)
        wanted = {spk: v for spk, v in meta.meta.get("voices", {}).items()
                  if spk in CHANNEL and v not in exclude_voices
                  and (cap is None or v not in voices or voices[v].seconds < cap)}
        if not wanted:
            continue
        item = read_item(root, rel)
        read += 1
        for spk, voice in wanted.items():
            words = [se for _, se, s in item.alignments if s == spk]
            vf = voices.setdefault(voice, _VoiceFiles(out, voice, fmt, file_s))
            for a, b in speech_stretches(words, join_s, pad_s, item.duration):
                if cap is not None and vf.seconds >= cap:
                    break
                vf.add(item.audio[CHANNEL[spk], int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)], gap)
    if bar is not None:
        bar.close()
    for vf in voices.values():
        vf.flush()
    per = {v: {"files": vf.files, "minutes": round(vf.seconds / 60, 2)} for v, vf in sorted(voices.items())}
    return {"out": str(out), "format": fmt, "items_read": read, "items": len(items),
            "hours": round(sum(vf.seconds for vf in voices.values()) / 3600, 3), "voices": per}
