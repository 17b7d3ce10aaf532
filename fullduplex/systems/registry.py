"""``--system NAME`` -> a duplex system (single or batched).

    default        the bundled default model (a clear error while none is bundled)
    random         untrained model of the default's intended size (benchmarks, plumbing)
    random-tiny    a very small untrained model (tests, demos)
    echo           returns the user's audio one frame later (no model; checks the plumbing)
    cascade[:silence|smart|text][@URL]   the VAD → ASR → LLM → TTS baseline (systems/cascade.py)
    ws://HOST:PORT/api/chat   any server speaking Moshi's WebSocket protocol (RemoteSystem)
    ./PATH or a/PATH          a model-system checkpoint folder (codec/ + lm/), as ``--checkpoint``

``--checkpoint DIR`` (a model-system checkpoint folder) overrides the model of ``default``.

A model system's name may end in sampling settings, as a URL query: ``default?padding_bonus=-1``,
``runs/model?temp_text=0.8&top_k_text=50`` (keys: ``fullduplex.lm.generate.SAMPLING_KEYS``). They
apply over the ``sampling`` argument, so one evaluation can compare settings of one model side by side.
"""

from __future__ import annotations

import numpy as np

from .base import Frame

NAMES = ("default", "random", "random-tiny", "echo", "cascade")


def _is_folder(name: str) -> bool:
    from pathlib import Path

    return ("/" in name or name.startswith(".")) and Path(name).is_dir()


class EchoSystem:
    """Says back what it heard, one frame later: the simplest duplex system (no model)."""

    def __init__(self, batch_size: int = 1, sample_rate: int = 24_000, frame_size: int = 1_920):
        self.sample_rate, self.frame_size, self.batch_size = sample_rate, frame_size, batch_size

    def reset(self, index: int | None = None) -> None:
        pass

    def step(self, user: np.ndarray, active=None):
        user = np.asarray(user, dtype=np.float32)
        if user.ndim == 1:
            return Frame(user.copy())
        return [Frame(row.copy()) for row in user]


_INT_KEYS = ("top_k", "top_k_text", "seed")


def split_settings(name: str) -> tuple[str, dict]:
    """``"default?padding_bonus=-1&top_k=50"`` -> ("default", {"padding_bonus": -1.0, "top_k": 50}).

    Names without ``?``, and ws:// URLs (whose query is the remote server's), come back unchanged.
    A key that is not a sampling setting, or a value of the wrong kind, is a ValueError that says so.
    """
    if "?" not in name or name.startswith(("ws://", "wss://")):
        return name, {}
    base, query = name.split("?", 1)
    if base.startswith(("cascade", "echo")):
        raise ValueError(f"{name!r}: sampling settings after '?' apply to model systems, not {base!r}")
    try:
        return base, parse_settings(query.split("&"))
    except ValueError as e:
        raise ValueError(f"{name!r}: {e}") from None


def parse_settings(pairs: list[str]) -> dict:
    """``["padding_bonus=-1", "top_k=50"]`` -> {"padding_bonus": -1.0, "top_k": 50}: sampling settings
    as text, typed. A key that is not a sampling setting, or a value of the wrong kind, is a ValueError."""
    from ..lm.generate import SAMPLING_KEYS

    out: dict = {}
    for part in filter(None, pairs):
        key, sep, raw = part.partition("=")
        if not sep or key not in SAMPLING_KEYS:
            raise ValueError(f"{part!r} is not KEY=VALUE with KEY one of {list(SAMPLING_KEYS)}")
        try:
            if key == "use_sampling":
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = raw.lower() in ("true", "1")
            else:
                out[key] = int(raw) if key in _INT_KEYS else float(raw)
        except ValueError:
            kind = "true or false" if key == "use_sampling" else "an integer" if key in _INT_KEYS else "a number"
            raise ValueError(f"{key}={raw!r} is not {kind}") from None
    return out


def _parts(name: str, checkpoint: str | None, seed: int = 0):
    from .build import default_parts, load_parts, random_parts

    if checkpoint is not None:
        if name not in ("default", "model"):
            raise ValueError(f"--checkpoint goes with --system default, not {name!r}")
        return load_parts(checkpoint)
    if name == "default":
        return default_parts()
    if name == "random":
        return random_parts("default", seed)
    if name == "random-tiny":
        return random_parts("tiny", seed)
    if _is_folder(name):
        return load_parts(name)
    raise ValueError(f"unknown system {name!r}; use one of {', '.join(NAMES)}, or a ws:// URL")


def _threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(n)


def make_system(name: str = "default", checkpoint: str | None = None, sampling: dict | None = None,
                int8: bool = False, seed: int = 0, threads: int | None = None):
    """A single-conversation ``DuplexSystem``."""
    _threads(threads)
    name, settings = split_settings(name)
    if name.startswith(("ws://", "wss://")):
        from .remote import RemoteSystem

        return RemoteSystem(name)
    if name == "echo":
        return EchoSystem()
    if name.startswith("cascade"):
        from .cascade import cascade_from_name

        return cascade_from_name(name, realtime=False)  # offline runs simulate the processing time
    from .model import ModelSystem

    return ModelSystem(_parts(name, checkpoint, seed), sampling={**(sampling or {}), **settings}, int8=int8)


def make_batched_system(name: str, batch_size: int, checkpoint: str | None = None, sampling: dict | None = None,
                        int8: bool = False, seed: int = 0, threads: int | None = None):
    """A ``BatchedDuplexSystem`` of batch_size sessions (what the server steps every 80 ms)."""
    _threads(threads)
    name, settings = split_settings(name)
    if name == "echo":
        return EchoSystem(batch_size)
    if name.startswith("cascade"):
        from .cascade import BatchedCascade

        return BatchedCascade(name, batch_size, realtime=True)  # served live: never wait for a worker
    if name.startswith(("ws://", "wss://")):
        raise ValueError("a remote system cannot be served again; serve a local model")
    from .model import BatchedModelSystem

    return BatchedModelSystem(_parts(name, checkpoint, seed), batch_size, sampling={**(sampling or {}), **settings},
                              int8=int8)
