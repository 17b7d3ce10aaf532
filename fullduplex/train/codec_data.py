"""Speech crops for codec training, from a two-channel conversation dataset.

Each channel of each conversation is one speaker (its voice is in the item's JSON); channels
spoken by a held-out voice are left out (they are the evaluation voices). A crop starts shortly
before a word of that channel's speaker, so crops are mostly speech. The crops of step ``s`` depend
only on (seed, s): a resumed run reads exactly the data an uninterrupted run would have read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..data.format import CHANNEL, SAMPLE_RATE, read_manifest


@dataclass
class Channel:
    path: Path
    channel: int
    voice: str
    frames: int
    word_starts: np.ndarray  # seconds


def speech_channels(root: str | Path, include_voices=None, exclude_voices=()) -> list[Channel]:
    """The speaker channels of a dataset, filtered by voice."""
    root = Path(root)
    out = []
    for e in read_manifest(root):
        wav = root / e["path"]
        doc = json.loads(wav.with_suffix(".json").read_text())
        voices = doc.get("voices", {})
        frames = int(round(float(e["duration"]) * SAMPLE_RATE))
        for spk, ch in CHANNEL.items():
            voice = voices.get(spk, f"unknown-{spk}")
            if voice in exclude_voices or (include_voices is not None and voice not in include_voices):
                continue
            starts = np.array(sorted(w[1][0] for w in doc.get("alignments", []) if w[2] == spk), dtype=np.float64)
            if len(starts):
                out.append(Channel(wav, ch, voice, frames, starts))
    return out


def read_crop(c: Channel, start: int, length: int) -> np.ndarray:
    """float32 [length] of channel c from sample ``start`` (zero-padded past the end)."""
    start = max(0, min(start, max(c.frames - length, 0)))
    x, _ = sf.read(str(c.path), start=start, stop=start + length, dtype="float32", always_2d=True)
    y = np.zeros(length, np.float32)
    y[: x.shape[0]] = x[:, c.channel]
    return y


class SpeechCrops:
    """``batch(step, rank, world)`` -> this process's share [B / world, 1, L] of step's global batch."""

    def __init__(self, root: str | Path, batch_size: int, segment_s: float, seed: int,
                 holdout_voices=(), frame_size: int = 1920):
        self.channels = speech_channels(root, exclude_voices=set(holdout_voices))
        if not self.channels:
            raise ValueError(f"{root}: no speech channels left for training (holdout voices {list(holdout_voices)})")
        self.batch_size, self.seed = batch_size, seed
        self.length = max(frame_size, int(round(segment_s * SAMPLE_RATE / frame_size)) * frame_size)
        w = np.array([len(c.word_starts) for c in self.channels], dtype=np.float64)
        self.weights = w / w.sum()

    @property
    def voices(self) -> list[str]:
        return sorted({c.voice for c in self.channels})

    def plan(self, step: int) -> list[tuple[int, int]]:
        """(channel index, start sample) of every crop of the global batch of ``step``."""
        rng = np.random.default_rng([self.seed, step])
        idx = rng.choice(len(self.channels), size=self.batch_size, p=self.weights)
        out = []
        for i in idx:
            c = self.channels[int(i)]
            t = c.word_starts[rng.integers(len(c.word_starts))] - rng.uniform(0.0, 0.3)
            out.append((int(i), int(t * SAMPLE_RATE)))
        return out

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        per = self.batch_size // world
        mine = self.plan(step)[rank * per:(rank + 1) * per]
        x = np.stack([read_crop(self.channels[i], s, self.length) for i, s in mine])
        return torch.from_numpy(x)[:, None]
