"""The streaming state protocol shared by every model in fullduplex.

A :class:`StreamingModule` keeps whatever it needs to continue a computation across calls
(convolution history, attention KV cache, positions) in an explicit per-module ``State``
object. Outside streaming the state is ``None`` and modules compute over whole sequences.

    with model.streaming(batch_size=4):      # every StreamingModule below gets a fresh state
        for frame in frames:                 # frame: [4, C, frame_size]
            y = model(frame)
        model.reset_streaming(torch.tensor([False, True, False, False]))  # row 1 starts over

Rows of the batch are independent sessions: resetting one row restarts that session while the
others go on, which is how one process serves many conversations.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

import torch
from torch import nn


@dataclass
class State:
    """Base class of a module's streaming state. ``reset(mask)`` restarts the rows where mask is True."""

    batch_size: int

    def reset(self, mask: torch.Tensor) -> None:  # mask: bool [B]
        pass


StateT = TypeVar("StateT", bound=State)


class StreamingModule(nn.Module, Generic[StateT]):
    """An ``nn.Module`` with an explicit streaming state (``None`` when not streaming)."""

    def __init__(self) -> None:
        super().__init__()
        self._streaming_state: StateT | None = None
        self._streaming_detached = False

    # --- to implement -------------------------------------------------------------------
    def _init_streaming_state(self, batch_size: int) -> StateT:
        return State(batch_size)  # type: ignore[return-value]

    # --- protocol -----------------------------------------------------------------------
    @property
    def is_streaming(self) -> bool:
        return self._streaming_state is not None

    def set_streaming_detached(self, detached: bool) -> None:
        """A detached module ignores its parents' ``streaming()``; it manages its own state."""
        self._streaming_detached = detached

    def _streaming_modules(self) -> Iterator["StreamingModule"]:
        """This module and its streaming descendants, skipping detached sub-trees."""

        def walk(m: nn.Module, top: bool):
            if isinstance(m, StreamingModule):
                if m._streaming_detached and not top:
                    return
                yield m
            for child in m.children():
                yield from walk(child, False)

        yield from walk(self, True)

    def _start_streaming(self, batch_size: int) -> None:
        for m in self._streaming_modules():
            m._streaming_state = m._init_streaming_state(batch_size)

    def _stop_streaming(self) -> None:
        for m in self._streaming_modules():
            m._streaming_state = None

    @contextlib.contextmanager
    def streaming(self, batch_size: int):
        """Enter streaming mode for ``batch_size`` independent streams; states are cleared on exit."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._start_streaming(batch_size)
        try:
            yield self
        finally:
            self._stop_streaming()

    def streaming_forever(self, batch_size: int) -> None:
        """Enter streaming mode without a context manager (e.g. for a server's lifetime)."""
        self._start_streaming(batch_size)

    def reset_streaming(self, mask: torch.Tensor | None = None) -> None:
        """Restart the rows where ``mask`` (bool [B]) is True; all rows when mask is None."""
        state = self._streaming_state
        if state is None:
            raise RuntimeError("reset_streaming() called outside streaming(); enter streaming first")
        if mask is None:
            mask = torch.ones(state.batch_size, dtype=torch.bool)
        mask = mask.to(torch.bool).view(-1)
        if mask.numel() != state.batch_size:
            raise ValueError(f"reset mask has {mask.numel()} rows, the streams have {state.batch_size}")
        for m in self._streaming_modules():
            if m._streaming_state is not None:
                m._streaming_state.reset(mask.to(_device_of(m)))


def _device_of(m: nn.Module) -> torch.device:
    for p in m.parameters(recurse=False):
        return p.device
    for b in m.buffers(recurse=False):
        return b.device
    for p in m.parameters():
        return p.device
    return torch.device("cpu")


class StreamingContainer(StreamingModule[State]):
    """A streaming module whose own state is empty; it only groups streaming children."""
