"""Speech crops for codec training, from a two-channel conversation dataset or a folder of speech.

A conversation dataset (a folder with ``manifest.jsonl``, as `data synth` and `data ingest` write):
each channel of each conversation is one speaker (its voice is in the item's JSON); channels
spoken by a held-out voice are left out (they are the evaluation voices). A crop starts shortly
before a word of that channel's speaker, so crops are mostly speech.

A folder of speech files (no manifest; .wav, .flac or .ogg at 24 kHz, any depth, e.g. one folder
per speaker as LibriSpeech lays it out): each channel of each file is a source, its voice the name
of the first folder under the root (the file's stem for files at the top), and a crop starts
anywhere in it, so the files should hold speech with little silence.

A crop starts on a codec frame (a multiple of ``frame_size`` samples), so per-frame targets
computed for a whole channel (the distillation teacher, train/codec_teacher.py) line up with it.

The crops of step ``s`` depend only on (seed, s): a resumed run reads exactly the data an
uninterrupted run would have read. That also lets ``workers`` threads read the next steps' crops
while the model trains on this one (reading 64 crops of 1.92 s takes about 30 ms from mono files
and 0.3 s from stereo conversations, against a step of about 0.1 s on a GPU).
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
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
    word_starts: np.ndarray  # seconds; empty: a crop may start anywhere


FOLDER_EXTS = (".wav", ".flac", ".ogg")


def _keep(voice: str, include_voices, exclude_voices) -> bool:
    return voice not in exclude_voices and (include_voices is None or voice in include_voices)


def folder_channels(root: Path, include_voices=None, exclude_voices=()) -> list[Channel]:
    """The channels of every speech file under ``root``, filtered by voice (see the module doc)."""
    out = []
    files = (p for p in root.rglob("*") if p.suffix.lower() in FOLDER_EXTS and not p.name.startswith("."))
    for f in sorted(p for p in files if p.is_file()):  # ".name": a temporary file of an interrupted write
        rel = f.relative_to(root)
        voice = rel.parts[0] if len(rel.parts) > 1 else f.stem
        if not _keep(voice, include_voices, exclude_voices):
            continue
        try:
            inf = sf.info(str(f))
        except RuntimeError as e:
            raise ValueError(f"{f}: not a readable audio file ({e}); remove or re-encode it") from None
        if inf.samplerate != SAMPLE_RATE:
            raise ValueError(f"{f}: {inf.samplerate} Hz; codec training reads {SAMPLE_RATE} Hz speech "
                             f"(resample the folder first, e.g. with soxr)")
        out += [Channel(f, ch, voice, inf.frames, np.zeros(0)) for ch in range(inf.channels)]
    return out


def speech_channels(root: str | Path, include_voices=None, exclude_voices=()) -> list[Channel]:
    """The speaker channels of a dataset or a folder of speech files, filtered by voice."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"codec data {root}: no such folder")
    if not (root / "manifest.jsonl").exists():
        return folder_channels(root, include_voices, exclude_voices)
    out = []
    for e in read_manifest(root):
        wav = root / e["path"]
        doc = json.loads(wav.with_suffix(".json").read_text())
        voices = doc.get("voices", {})
        frames = int(round(float(e["duration"]) * SAMPLE_RATE))
        for spk, ch in CHANNEL.items():
            voice = voices.get(spk, f"unknown-{spk}")
            if not _keep(voice, include_voices, exclude_voices):
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
    """``batch(step, rank, world)`` -> this process's share [B / world, 1, L] of step's global batch.

    With ``workers`` > 0, each call also starts reading the batches of the next ``workers`` steps
    in background threads; the result is the same as reading in the call.
    """

    def __init__(self, root: str | Path, batch_size: int, segment_s: float, seed: int,
                 holdout_voices=(), frame_size: int = 1920, workers: int = 0):
        self.channels = speech_channels(root, exclude_voices=set(holdout_voices))
        if not self.channels:
            raise ValueError(f"{root}: no speech channels left for training (holdout voices {list(holdout_voices)})")
        self.batch_size, self.seed = batch_size, seed
        self.frame_size = frame_size
        self.length = max(frame_size, int(round(segment_s * SAMPLE_RATE / frame_size)) * frame_size)
        # a conversation channel weighs its words, a speech file its length
        w = np.array([len(c.word_starts) or c.frames / SAMPLE_RATE for c in self.channels], dtype=np.float64)
        self.weights = w / w.sum()
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[tuple[int, int, int], Future] = {}

    @property
    def voices(self) -> list[str]:
        return sorted({c.voice for c in self.channels})

    def plan(self, step: int) -> list[tuple[int, int]]:
        """(channel index, start sample) of every crop of the global batch of ``step``; a start is
        a multiple of ``frame_size`` and leaves a whole crop in the channel where it is long enough."""
        rng = np.random.default_rng([self.seed, step])
        idx = rng.choice(len(self.channels), size=self.batch_size, p=self.weights)
        out = []
        for i in idx:
            c = self.channels[int(i)]
            if len(c.word_starts):
                t = c.word_starts[rng.integers(len(c.word_starts))] - rng.uniform(0.0, 0.3)
                start = int(t * SAMPLE_RATE)
            else:
                start = int(rng.integers(max(c.frames - self.length, 0) + 1))
            start = max(0, min(start, c.frames - self.length))
            out.append((int(i), start // self.frame_size * self.frame_size))
        return out

    def crops(self, step: int, rank: int = 0, world: int = 1) -> list[tuple[Channel, int]]:
        """(channel, start sample) of this process's crops of ``step``, in the order of its batch."""
        per = self.batch_size // world
        return [(self.channels[i], s) for i, s in self.plan(step)[rank * per:(rank + 1) * per]]

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        if self.workers <= 0:
            return self.read(step, rank, world)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="codec-crops")
        mine = self._ahead.pop((step, rank, world), None)
        for key in [k for k in self._ahead if not step < k[0] <= step + self.workers]:
            self._ahead.pop(key).cancel()  # a jump (another start step): these will not be asked for
        for s in range(step + 1, step + 1 + self.workers):
            if (s, rank, world) not in self._ahead:
                self._ahead[(s, rank, world)] = self._pool.submit(self.read, s, rank, world)
        return mine.result() if mine is not None else self.read(step, rank, world)

    def read(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        """The crops of ``batch(step, rank, world)``, read now."""
        x = np.stack([read_crop(c, s, self.length) for c, s in self.crops(step, rank, world)])
        return torch.from_numpy(x)[:, None]
