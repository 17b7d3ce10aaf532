"""Training checkpoints, written atomically, for exact resume.

    OUT/checkpoints/step_00001000/
        <part>.safetensors     weights and buffers of each trained module (model, disc, ...)
        ema.safetensors        the weight EMA, if any
        train_state.pt         step, optimizer and scheduler states, every process's RNG states
        model/                 the model in its own checkpoint format (loadable as is)
    OUT/checkpoints/latest     name of the newest complete checkpoint

A checkpoint is written into a temporary folder, flushed to disk and renamed into place, and only
then does ``latest`` (itself replaced atomically) point to it: a run killed at any moment leaves
the previous checkpoint intact. ``train_state.pt`` holds only tensors and plain containers and is
read with ``torch.load(weights_only=True)``; weights are safetensors.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

STATE_NAME = "train_state.pt"
LATEST = "latest"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    for p in [path, *[q for q in path.rglob("*") if q.is_dir()]]:
        _fsync_dir(p)


def step_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(root: str | Path, step: int, tensors: dict[str, dict[str, torch.Tensor]],
                    state: dict, export: Callable[[Path], None] | None = None, keep: int = 2) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically; keep the newest ``keep`` checkpoints."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / f".tmp-{step_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, sd in tensors.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()}, str(tmp / f"{name}.safetensors"))
    torch.save(state, tmp / STATE_NAME)
    if export is not None:
        export(tmp / "model")
    _fsync_tree(tmp)
    if final.exists():  # a checkpoint of this step from an earlier (killed) attempt
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    latest_tmp = root / f".{LATEST}.tmp{os.getpid()}"
    latest_tmp.write_text(final.name + "\n")
    with open(latest_tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(latest_tmp, root / LATEST)
    _fsync_dir(root)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for p in done[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".tmp-step_*"):  # leftovers of killed writers
        if not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    root = Path(root)
    ptr = root / LATEST
    if ptr.exists():
        p = root / ptr.read_text().strip()
        if (p / STATE_NAME).exists():
            return p
    done = sorted(p for p in root.glob("step_*") if (p / STATE_NAME).exists())
    return done[-1] if done else None


def load_tensors(ckpt: Path, name: str) -> dict[str, torch.Tensor]:
    path = ckpt / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {ckpt} has no {path.name}")
    return load_file(str(path))


def load_state(ckpt: Path) -> dict:
    return torch.load(ckpt / STATE_NAME, map_location="cpu", weights_only=True)
