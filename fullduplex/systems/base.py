"""The one interface every talking system implements (shared/DESIGN.md, "The one idea").

Every ``frame_size`` samples (80 ms at 24 kHz) a system receives one frame of the user's audio and
returns one frame of its own audio plus any text it produced in that frame. It never waits for a
turn to end; silence is just a frame. ``converse``, the server and the evaluation harness drive
only this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass
class Frame:
    """One frame of a system's output.

    audio: float32 [frame_size] at the system's sample rate.
    text: the text pieces produced in this frame (may be empty).
    info: optional per-frame details (timings, events) for logs and metrics.
    """

    audio: np.ndarray
    text: str = ""
    info: dict = field(default_factory=dict)


@runtime_checkable
class DuplexSystem(Protocol):
    sample_rate: int  # e.g. 24_000
    frame_size: int  # samples per frame, e.g. 1_920 (80 ms)

    def reset(self) -> None:
        """Start a new conversation."""

    def step(self, user: np.ndarray) -> Frame:
        """user: float32 [frame_size] -> the system's next frame."""


@runtime_checkable
class BatchedDuplexSystem(Protocol):
    """N independent sessions stepped together (how one process serves many conversations)."""

    sample_rate: int
    frame_size: int
    batch_size: int

    def reset(self, index: int | None = None) -> None:
        """Restart session ``index`` (all sessions when None); the others go on."""

    def step(self, user: np.ndarray, active: Sequence[bool] | None = None) -> list[Frame]:
        """user: float32 [batch_size, frame_size] -> one Frame per session."""

    # Optional, for systems that sample each session with its own settings (the model system):
    #   effective_sampling(overrides) -> dict   the settings a session with these overrides gets (checks them)
    #   set_sampling(index, overrides) -> dict  session index samples so until reset(index)
    #   sampling_limits() -> dict               the largest top-k of each stream
    # The server gives a session's query settings only to systems that have all three.
