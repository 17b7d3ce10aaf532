"""The codec's distillation targets: Whisper tiny.en encoder states of whole channels, computed once.

Whisper's encoder was trained on 30 s windows. A crop of a second encoded on its own gives states
far from the same frames' states in their utterance (mean cosine similarity 0.43 for 0.96 s crops
of `data synth` speech, 0.58 for 1.92 s), so ``codec.distill_context: channel`` (the default)
encodes every training channel once, in windows of at most 28.8 s padded to 30 s as Whisper pads
its input, averages the states to the codec's frame rate and stores them as float16:

    <cache>/<the channel's file, relative to the data folder>.ch<k>.npy      [ceil(samples / frame_size), 384]

A crop starts on a codec frame (train/codec_data.py), so its targets are a slice of its channel's
rows. A step then costs no teacher time, which matters on a GPU, where encoding a batch's crops on
the CPU took longer than the codec's step. ``distill_context: crop`` encodes each crop on its own
at each step instead (the first recipe; no cache).

The cache is built before the first step, with a progress bar, the channels split over the
processes of a distributed run; an interrupted build keeps the files it finished (written
atomically) and goes on from there. A file whose length no longer matches its channel is encoded
again.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..data.format import SAMPLE_RATE
from ..engines.asr import WHISPER_FEATURE_DIM
from .codec_data import Channel, read_crop

WINDOW_FRAMES = 360        # codec frames per encoded window (28.8 s at 12.5 Hz)
WHISPER_WINDOW_S = 30.0    # what each window is padded to
CONTEXTS = ("channel", "crop")


class TeacherCache:
    """Whisper tiny.en states of channels at the codec's frame rate, stored under ``folder``."""

    def __init__(self, folder: str | Path, data_root: str | Path, frame_size: int, sample_rate: int = SAMPLE_RATE):
        self.folder, self.root = Path(folder), Path(data_root)
        self.frame_size, self.sample_rate = frame_size, sample_rate
        self.frame_rate = sample_rate / frame_size
        self._open: dict[tuple[str, int], np.ndarray] = {}

    def path(self, c: Channel) -> Path:
        try:
            rel = c.path.relative_to(self.root)
        except ValueError:
            rel = Path(c.path.name)
        return self.folder / f"{rel}.ch{c.channel}.npy"

    def rows(self, c: Channel) -> int:
        return math.ceil(c.frames / self.frame_size)

    def _valid(self, c: Channel) -> bool:
        p = self.path(c)
        if not p.exists():
            return False
        try:
            return np.load(p, mmap_mode="r").shape == (self.rows(c), WHISPER_FEATURE_DIM)
        except (ValueError, OSError):
            return False  # a damaged file is encoded again

    def build(self, channels: list[Channel], rank: int = 0, world: int = 1, progress: bool = True) -> int:
        """Encode the channels (this process's share) that have no valid file yet; returns how many."""
        todo = [c for i, c in enumerate(channels) if i % world == rank and not self._valid(c)]
        if not todo:
            return 0
        from tqdm import tqdm

        hours = sum(c.frames for c in todo) / self.sample_rate / 3600
        bar = tqdm(todo, desc=f"teacher states ({hours:.1f} h)", unit="channel", disable=not progress or rank != 0)
        for c in bar:
            self._write(c, self.encode(c))
        bar.close()
        return len(todo)

    def encode(self, c: Channel) -> np.ndarray:
        """float16 [rows, 384]: the channel encoded in windows of WINDOW_FRAMES codec frames."""
        from ..engines.asr import encoder_features

        win = WINDOW_FRAMES * self.frame_size
        padded = int(WHISPER_WINDOW_S * self.sample_rate)
        rows = self.rows(c)
        out = np.zeros((rows, WHISPER_FEATURE_DIM), np.float16)
        for k in range(0, rows, WINDOW_FRAMES):
            start = k * self.frame_size
            x = np.zeros((1, padded), np.float32)
            n = min(win, c.frames - start)
            x[0, :n] = read_crop(c, start, n)
            feats = encoder_features(x, self.sample_rate, self.frame_rate)[0]
            m = min(WINDOW_FRAMES, rows - k)
            out[k:k + m] = feats[:m]
        return out

    def _write(self, c: Channel, feats: np.ndarray) -> None:
        p = self.path(c)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, feats)
        tmp.replace(p)

    def features(self, c: Channel) -> np.ndarray:
        key = (str(c.path), c.channel)
        if key not in self._open:
            if not self._valid(c):
                self._write(c, self.encode(c))
            self._open[key] = np.load(self.path(c), mmap_mode="r")
        return self._open[key]

    def targets(self, crops: list[tuple[Channel, int]], frames: int) -> torch.Tensor:
        """float32 [B, frames, 384]: the rows of each (channel, start sample) crop; start is a
        multiple of frame_size. Rows past a channel's end (a crop longer than its channel) are zero."""
        out = np.zeros((len(crops), frames, WHISPER_FEATURE_DIM), np.float32)
        for b, (c, start) in enumerate(crops):
            if start % self.frame_size:
                raise ValueError(f"crop start {start} is not on a codec frame ({self.frame_size} samples)")
            rows = self.features(c)[start // self.frame_size: start // self.frame_size + frames]
            out[b, :len(rows)] = rows
        return torch.from_numpy(out)

