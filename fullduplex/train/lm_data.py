"""Batches of LM training windows streamed from the shards of `data tokenize`.

The windows are visited epoch by epoch, each epoch in its own random order drawn from (seed,
epoch); the global batch of step s holds positions [s x B, (s + 1) x B) of that sequence, so the
data position of a run is its step. Each process reads only its slice; shard files are opened
lazily and only the rows needed are read. With ``user_text`` each window also brings the user's
text stream (the shards' ``user_text`` tensor) as one more row, and with ``floor`` its floor labels
(tokenize.py ``floor_labels``) as one more, last row; ``split_rows`` takes them apart again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from .tokenize import FLOOR_VERSION, META, floor_version

RERUN = ("rerun `fullduplex data tokenize` on the same dataset with --out {folder}; it adds it to finished "
         "shards without encoding the audio again")
RELABEL = ("its floor labels were made by an older version ({version}; now {current}): rerun `fullduplex data "
           "tokenize` on the same dataset with --out {folder} to label them again without encoding the audio")


def split_rows(batch: torch.Tensor, user_text: bool, floor: bool
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """[B, K (+1) (+1), T] as ShardWindows stacks it -> (codes [B, K, T], user text [B, 1, T] or None,
    floor labels [B, 1, T] or None)."""
    fl = batch[:, -1:] if floor else None
    if floor:
        batch = batch[:, :-1]
    ut = batch[:, -1:] if user_text else None
    return (batch[:, :-1] if user_text else batch), ut, fl


class ShardWindows:
    def __init__(self, folder: str | Path, batch_size: int, seed: int, user_text: bool = False, floor: bool = False):
        self.folder = Path(folder)
        self.files = sorted(self.folder.glob("shard-*.safetensors"))
        if not self.files:
            raise FileNotFoundError(f"{self.folder}: no shard-*.safetensors (run `fullduplex data tokenize` first)")
        meta = self.folder / META
        self.meta = json.loads(meta.read_text()) if meta.exists() else {}
        self.index: list[tuple[int, int]] = []
        for fi, f in enumerate(self.files):
            with safe_open(str(f), framework="pt") as h:
                n = h.get_slice("codes").get_shape()[0]
                if user_text and "user_text" not in h.keys():
                    raise ValueError(f"{f} has no user_text (the user's transcript): " + RERUN.format(folder=self.folder))
                if floor and "floor" not in h.keys():
                    raise ValueError(f"{f} has no floor labels (where the user pauses and where a turn ends): "
                                     + RERUN.format(folder=self.folder))
                if floor and floor_version(h) != FLOOR_VERSION:
                    raise ValueError(f"{f}: " + RELABEL.format(version=floor_version(h), current=FLOOR_VERSION,
                                                              folder=self.folder))
            self.index += [(fi, r) for r in range(n)]
        self.user_text, self.floor = user_text, floor
        self.batch_size, self.seed = batch_size, seed
        self._handles: dict[int, object] = {}
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.index))}
        return self._orders[epoch]

    def positions(self, step: int) -> list[int]:
        """Window indices of the global batch of ``step``."""
        n = len(self.index)
        return [int(self._order(p // n)[p % n]) for p in range(step * self.batch_size, (step + 1) * self.batch_size)]

    def has(self, name: str) -> bool:
        """Whether every shard file holds the per-window tensor ``name`` (user_text, floor)."""
        return all(name in self._handle(fi).keys() for fi in range(len(self.files)))

    def stale_floor(self) -> str | None:
        """What to do if a shard file's floor labels are of an older version (None if all are current)."""
        for fi, f in enumerate(self.files):
            version = floor_version(self._handle(fi))
            if version not in (None, FLOOR_VERSION):
                return f"{f}: " + RELABEL.format(version=version, current=FLOOR_VERSION, folder=self.folder)
        return None

    def _handle(self, fi: int):
        """The open safetensors handle of shard file fi."""
        h = self._handles.get(fi)
        if h is None:
            h = self._handles[fi] = safe_open(str(self.files[fi]), framework="pt")
        return h

    def window(self, i: int) -> torch.Tensor:
        """Window i (in shard order) as stored: codes [K, T], then the user's text and the floor labels
        as one row each when asked for ([K (+1) (+1), T])."""
        fi, r = self.index[i]
        h = self._handle(fi)
        rows = [h.get_slice("codes")[r:r + 1][0]]
        for name, wanted in (("user_text", self.user_text), ("floor", self.floor)):
            if wanted:
                rows.append(h.get_slice(name)[r:r + 1].to(rows[0].dtype))
        return torch.cat(rows)

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        per = self.batch_size // world
        mine = self.positions(step)[rank * per:(rank + 1) * per]
        return torch.stack([self.window(i) for i in mine]).long()
