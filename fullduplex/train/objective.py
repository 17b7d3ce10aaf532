"""What a model brings to the training loop: its modules, its batches and its losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class Objective:
    """Base class of the codec and LM objectives.

    * ``parts()``: the trained modules by name, the main model first as "model" (a GAN adds "disc");
    * ``batch(step, rank, world)``: this process's share of the global batch of ``step`` (a pure
      function of the step, so the data position of a resumed run is its step);
    * ``phases(step)``: which parts take an optimizer step at ``step``, in order;
    * ``loss(part, modules, batch, step)``: (loss to minimise for that part, metrics);
    * ``export(folder)``: the model in its own checkpoint format.
    """

    find_unused_parameters = False
    broadcast_buffers = True

    def parts(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def lr(self, part: str) -> float | None:
        """Learning rate of a part (None: the config's)."""
        return None

    def trainable(self, part: str) -> list[nn.Parameter]:
        return [p for p in self.parts()[part].parameters() if p.requires_grad]

    def state_keys(self, part: str) -> set[str] | None:
        """Keys of the part's state dict to checkpoint (None: all). LoRA keeps only what it trains."""
        return None

    def batch(self, step: int, rank: int, world: int) -> Any:
        raise NotImplementedError

    def phases(self, step: int) -> list[str]:
        return ["model"]

    def loss(self, part: str, modules: dict[str, nn.Module], batch: Any, step: int
             ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def export(self, folder: Path) -> None:
        raise NotImplementedError

    def to(self, device: torch.device) -> "Objective":
        for m in self.parts().values():
            m.to(device)
        return self
