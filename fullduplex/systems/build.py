"""Building the parts of a model system: untrained stand-ins, checkpoint folders, the bundled default.

A model-system checkpoint is a folder:

    system/
      codec/   config.json + model.safetensors           (fullduplex.codec.save_codec)
      lm/      config.json + model.safetensors + tokenizer.json | tokenizer.model
               or an adapter folder: config.json + lora.json + lora.safetensors (fullduplex.lm.load_checkpoint)
      system.json   optional: {"sampling": {"temp": 0.8, ...}, "int8": true}  (int8: run the LM's
                    linear layers as dynamic int8 by default, as a CPU model is meant to)

Until a trained duplex model exists, ``random_parts("default")`` builds an untrained model of the
default's intended size (the ``small`` codec + an LM with SmolLM2-135M's temporal shape and an
8-codebook depth transformer) and ``random_parts("tiny")`` a very small one for fast tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..codec import Codec, load_codec, randomize_codebooks, save_codec
from ..codec.config import small_config, tiny_config
from ..lm import LMConfig, LMModel, load_checkpoint, save_checkpoint
from ..lm.model import random_lm
from ..lm.text import TextTokenizer
from .toy_tokenizer import toy_tokenizer

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SYSTEM_JSON = "system.json"


@dataclass
class ModelParts:
    codec: Codec
    lm: LMModel
    tokenizer: TextTokenizer | None
    sampling: dict
    name: str
    int8: bool = False  # run the LM's linear layers as dynamic int8 unless told otherwise


def default_model_path() -> Path:
    """Where the bundled default duplex model lives (once the training issue ships it)."""
    return ASSETS / "model"


def tiny_lm_config(card: int = 64, text_card: int = 64) -> LMConfig:
    """A few-thousand-parameter Moshi-layout LM (1 text + 8 model + 8 user streams) for tests."""
    return LMConfig(dim=32, num_heads=2, num_layers=2, hidden_scale=2, gating="silu", norm="rms_norm",
                    positional_embedding="rope", context=50, causal=True, text_card=text_card,
                    existing_text_padding_id=3, existing_text_end_padding_id=0, n_q=16, dep_q=8, card=card,
                    delays=[0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1], depformer_dim=32,
                    depformer_num_heads=2, depformer_num_layers=1, depformer_dim_feedforward=64,
                    depformer_multi_linear=True, depformer_weights_per_step=True, depformer_pos_emb="none",
                    depformer_gating="silu")


def random_parts(size: str = "default", seed: int = 0) -> ModelParts:
    """Untrained codec + LM + toy tokenizer; ``size`` is "default" (the intended size) or "tiny"."""
    from ..lm.smollm import smollm2_config

    if size not in ("default", "tiny"):
        raise ValueError(f"unknown model size {size!r}: use 'default' or 'tiny'")
    torch.manual_seed(seed)
    ccfg = small_config() if size == "default" else tiny_config()
    codec = Codec(ccfg).eval()
    randomize_codebooks(codec, seed=seed)
    if size == "default":
        lcfg = smollm2_config(card=ccfg.bins)
    else:
        lcfg = tiny_lm_config(card=ccfg.bins)
    lm = random_lm(lcfg, seed)
    tok = toy_tokenizer(lcfg.text_card, pad_id=lcfg.existing_text_padding_id,
                        epad_id=lcfg.existing_text_end_padding_id)
    return ModelParts(codec, lm, tok, {}, f"random-{size}")


def load_parts(folder: str | Path) -> ModelParts:
    """A model-system checkpoint folder (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such model checkpoint folder")
    for sub in ("codec", "lm"):
        if not (folder / sub).is_dir():
            raise FileNotFoundError(f"{folder} is not a model-system checkpoint: it has no {sub}/ folder "
                                    "(expected codec/ and lm/, see fullduplex.systems.build)")
    codec = load_codec(folder / "codec")
    lm, tok = load_checkpoint(folder / "lm")
    if codec.cardinality != lm.cfg.card:
        raise ValueError(f"{folder}: the codec has {codec.cardinality} codes per codebook, the LM expects {lm.cfg.card}")
    if codec.num_codebooks < lm.cfg.dep_q:
        raise ValueError(f"{folder}: the codec gives {codec.num_codebooks} codebooks, the LM needs {lm.cfg.dep_q}")
    meta = json.loads((folder / SYSTEM_JSON).read_text()) if (folder / SYSTEM_JSON).exists() else {}
    int8 = meta.get("int8", False)
    if not isinstance(int8, bool):
        raise ValueError(f"{folder / SYSTEM_JSON}: int8 must be true or false, got {int8!r}")
    return ModelParts(codec, lm.eval(), tok, dict(meta.get("sampling", {})), folder.name, int8)


def save_parts(parts: ModelParts, folder: str | Path) -> Path:
    """Write a model-system checkpoint folder that :func:`load_parts` reads."""
    folder = Path(folder)
    save_codec(parts.codec, folder / "codec")
    save_checkpoint(parts.lm, folder / "lm")
    if parts.tokenizer is not None:
        name = "tokenizer.model" if parts.tokenizer.sp is not None else "tokenizer.json"
        parts.tokenizer.save(folder / "lm" / name)
    (folder / SYSTEM_JSON).write_text(json.dumps({"sampling": parts.sampling, "int8": parts.int8}, indent=1) + "\n")
    return folder


def default_parts() -> ModelParts:
    """The bundled default duplex model; a clear error while none is bundled."""
    path = default_model_path()
    if not (path / "lm").is_dir():
        raise FileNotFoundError(
            "no default duplex model is bundled yet (it comes from the training issue); "
            "give --checkpoint DIR (a folder with codec/ and lm/), or --system random for an untrained "
            "model of the default's size, or --system random-tiny for a very small one")
    return load_parts(path)
