"""Loading and saving LM weights: Kyutai's checkpoints and our checkpoint folders.

    lm = load_kyutai("model.safetensors", {"dim": 4096, ...})     # Kyutai LMModel kwargs
    save_checkpoint(lm, "ckpt/", tokenizer_file="tokenizer.json")  # config.json + model.safetensors
    lm, tokenizer = load_checkpoint("ckpt/")
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

from .config import LMConfig
from .model import LMModel

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def _fused_to_split(sd: dict[str, torch.Tensor], model: LMModel) -> dict[str, torch.Tensor]:
    """Rename Kyutai's older fused attention keys (``in_proj_weight``/``out_proj.weight``) to per-step keys."""
    out = dict(sd)
    for name, mod in model.named_modules():
        if not hasattr(mod, "in_projs"):
            continue
        mult = len(mod.in_projs)
        for old, new in ((f"{name}.in_proj_weight", f"{name}.in_projs.{{}}.weight"),
                         (f"{name}.in_proj.weight", f"{name}.in_projs.{{}}.weight"),
                         (f"{name}.out_proj.weight", f"{name}.out_projs.{{}}.weight")):
            if old in out:
                w = out.pop(old)
                if w.shape[0] % mult:
                    raise ValueError(f"{old} has {w.shape[0]} rows, not divisible by {mult} per-step weights")
                for i, part in enumerate(w.chunk(mult, dim=0)):
                    out[new.format(i)] = part
    return out


def load_state(model: LMModel, state: Mapping[str, torch.Tensor], source: str = "weights") -> LMModel:
    """Load ``state`` into ``model`` strictly; a mismatch raises a ValueError naming the keys."""
    sd = _fused_to_split({k: v for k, v in state.items()}, model)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(f"{k}: {tuple(sd[k].shape)} in {source}, {tuple(own[k].shape)} in config"
                   for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        def show(xs: list[str]) -> str:
            return ", ".join(xs[:8]) + (f" … (+{len(xs) - 8})" if len(xs) > 8 else "")
        parts = [f"{n} keys: {show(x)}" for n, x in (("missing", missing), ("unexpected", unexpected),
                                                      ("mismatched", wrong)) if x]
        raise ValueError(f"{source} do not match the LM config: " + "; ".join(parts))
    dtype = model.dtype
    model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()})
    return model


def load_kyutai(weights: str | Path | Mapping[str, torch.Tensor], config: Mapping[str, Any] | LMConfig,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> LMModel:
    """A Kyutai Moshi-style checkpoint as an eval-mode :class:`LMModel`.

    weights: a safetensors path or a state dict (fused legacy attention names accepted);
    config: the dict of Kyutai ``LMModel`` arguments (their defaults apply to missing keys) or an LMConfig.
    """
    cfg = config if isinstance(config, LMConfig) else LMConfig.from_dict(dict(config))
    if isinstance(weights, (str, Path)):
        path = Path(weights)
        if not path.exists():
            raise FileNotFoundError(f"no weights at {path}")
        state = load_file(str(path))
        source = f"weights {path.name}"
    else:
        state = dict(weights)
        source = "weights"
    with torch.device("meta"):
        model = LMModel(cfg)
    model = model.to_empty(device=device).to(dtype)
    load_state(model, state, source)
    return model.eval()


def save_checkpoint(model: LMModel, folder: str | Path, tokenizer=None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ the tokenizer) into folder.

    tokenizer: a :class:`TextTokenizer`, or the path of a ``.model`` / ``.json`` tokenizer file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=1) + "\n")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    if isinstance(tokenizer, (str, Path)):
        src = Path(tokenizer)
        shutil.copyfile(src, folder / ("tokenizer.model" if src.suffix == ".model" else "tokenizer.json"))
    elif tokenizer is not None:
        tokenizer.save(folder / ("tokenizer.json" if tokenizer.hf is not None else "tokenizer.model"))
    return folder


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """(model, tokenizer or None) from a folder written by :func:`save_checkpoint`."""
    from .text import TextTokenizer

    folder = Path(folder)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"checkpoint folder {folder} has no {name}")
    cfg = LMConfig.from_dict(json.loads((folder / "config.json").read_text()))
    model = load_kyutai(folder / "model.safetensors", cfg, device=device, dtype=dtype)
    tok = None
    for name in TOKENIZER_FILES:
        if (folder / name).exists():
            tok = TextTokenizer.load(folder / name)
            break
    return model, tok
