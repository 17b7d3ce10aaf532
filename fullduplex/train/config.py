"""Training configurations: dataclasses with defaults, read from YAML or JSON files.

A config file holds a flat mapping for the run plus nested mappings for the sections below, e.g.

    kind: codec
    out_dir: runs/codec-small
    steps: 20000
    optim: {lr: 3.0e-4, warmup_steps: 500}
    codec: {preset: small, data: data/synth, segment_s: 1.0}

Unknown keys are errors (a typo never silently falls back to a default).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class OptimConfig:
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    eps: float = 1e-8
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1          # cosine decay from lr to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0             # max global gradient norm (0: off)


@dataclass
class CodecObjectiveConfig:
    preset: str = "small"              # codec/config.py presets: small | tiny | mimi
    model: dict = field(default_factory=dict)  # CodecConfig overrides
    init: str | None = None            # start from this codec checkpoint folder ("default": the bundled codec)
    freeze: list[str] = field(default_factory=list)  # with init: "encoder" and/or "quantizer" (see codec_objective)
    data: str | None = None            # conversation dataset folder (manifest.jsonl)
    holdout_voices: list[str] = field(default_factory=list)  # channels spoken by these voices are not used
    segment_s: float = 1.0             # training crop length (seconds)
    data_workers: int = 4              # threads reading the next steps' crops during a step (0: read in the step)
    # loss weights
    mel_weight: float = 1.0
    wav_weight: float = 0.1
    commitment_weight: float = 1.0
    adversarial: bool = False          # multi-scale STFT discriminator + feature matching
    adv_weight: float = 1.0
    feat_weight: float = 2.0
    disc_start_step: int = 0
    disc_lr: float | None = None       # default: optim.lr
    disc_filters: int = 32
    disc_n_ffts: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128])
    # quantizer
    quantizer_dropout: float = 0.5     # probability that a batch uses a random number of codebooks
    no_quantization_rate: float = 0.5  # per-sample probability to decode the unquantized latent
    ema_decay: float = 0.99
    kmeans_iters: int = 50
    dead_code_every: int = 5           # steps between dead-code replacements
    dead_code_threshold: float = 0.1   # a code used less than this x the mean usage is dead
    # semantic distillation of the first codebook toward a frozen speech encoder (codec_objective)
    distill: str | None = None         # None | "whisper-tiny.en"
    distill_weight: float = 1.0
    distill_context: str = "channel"   # channel: states of whole channels, cached | crop: of each crop alone (codec_teacher)
    distill_cache: str | None = None   # where the channel states are kept (default: <codec.data>/.teacher/<teacher>)


@dataclass
class LMObjectiveConfig:
    shards: str | None = None          # folder of `data tokenize` shards
    init: str = "config"               # config | smollm2 | <LM checkpoint folder>
    model: dict = field(default_factory=dict)  # LMConfig (init=config) or overrides (init=smollm2)
    text_padding_weight: float = 0.5
    first_codebook_weight: float = 1.0
    user_text_weight: float = 1.0      # weight of the user transcript loss (models with lm.model.user_text_delay > 0)
    hold_weight: float = 1.0           # x the text loss at the frames where the user hesitates (shards' floor labels)
    take_weight: float = 1.0           # x the text loss where the assistant's reply begins after a user's turn
    echo_weight: float = 1.0           # x the text loss at the words it says back from the user (lm/text.py echo_positions)
    lora: bool = False                 # train LoRA adapters on the temporal transformer only
    lora_rank: int = 64
    lora_scaling: float = 2.0
    train_embeddings: bool = True      # with LoRA: also train the audio embeddings, depformer and heads
    base_dtype: str = "fp32"           # with LoRA: fp32 | bf16 for the frozen temporal transformer
    export_dtype: str = "float16"      # with LoRA: float32 | float16 | bfloat16 | int8 (per-row) for the exported tensors


@dataclass
class TrainConfig:
    kind: str = "codec"                # codec | lm
    out_dir: str = "runs/debug"
    seed: int = 0
    steps: int = 1000
    max_minutes: float = 0.0           # wall-clock budget: the schedule is sized to end within it (0: off)
    batch_size: int = 8                # global batch (split over processes)
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: str = "auto"            # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16
    ema: float = 0.0                   # decay of an EMA of the weights (0: off)
    distributed: str = "ddp"           # ddp | fsdp (sharded, for models that do not fit one GPU)
    log_every: int = 10
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    threads: int = 0                   # torch CPU threads (0: torch's default)
    progress: bool = True
    codec: CodecObjectiveConfig = field(default_factory=CodecObjectiveConfig)
    lm: LMObjectiveConfig = field(default_factory=LMObjectiveConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, d: dict[str, Any], where: str):
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for k, v in d.items():
        sub = {"optim": OptimConfig, "codec": CodecObjectiveConfig, "lm": LMObjectiveConfig}.get(k)
        if sub is not None and cls is TrainConfig:
            v = _build(sub, v or {}, f"{where}.{k}")
        elif k == "betas":
            v = tuple(v)
        else:
            v = _coerce(v, fields[k].type, f"{where}.{k}")
        kwargs[k] = v
    return cls(**kwargs)


def _coerce(v: Any, annotation: str, where: str) -> Any:
    """Check a scalar against its field's type; numbers written as strings are read as numbers
    (YAML 1.1 reads ``3e-4`` without a dot as a string)."""
    kinds = [a.strip() for a in str(annotation).split("|")]
    if v is None and "None" in kinds:
        return v
    if "bool" in kinds:
        if not isinstance(v, bool):
            raise ValueError(f"{where} must be true or false, got {v!r}")
        return v
    if "int" in kinds or "float" in kinds:
        if isinstance(v, str):
            try:
                v = float(v) if "float" in kinds else int(v)
            except ValueError:
                raise ValueError(f"{where} must be a number, got {v!r}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where} must be a number, got {v!r}")
        if "float" in kinds:
            return float(v)
        if isinstance(v, float) and not v.is_integer():
            raise ValueError(f"{where} must be an integer, got {v!r}")
        return int(v)
    return v


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    cfg = _build(TrainConfig, d, "config")
    if cfg.kind not in ("codec", "lm"):
        raise ValueError(f"config.kind must be codec or lm, got {cfg.kind!r}")
    if cfg.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"config.precision must be auto, fp32 or bf16, got {cfg.precision!r}")
    if not cfg.max_minutes >= 0:
        raise ValueError(f"config.max_minutes must be 0 (no budget) or a number of minutes, got {cfg.max_minutes!r}")
    if cfg.distributed not in ("ddp", "fsdp"):
        raise ValueError(f"config.distributed must be ddp or fsdp, got {cfg.distributed!r}")
    if cfg.lm.export_dtype not in ("float32", "float16", "bfloat16", "int8"):
        raise ValueError("config.lm.export_dtype must be float32, float16, bfloat16 or int8, "
                         f"got {cfg.lm.export_dtype!r}")
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML (.yaml/.yml) or JSON config file; ``overrides`` are dotted keys ("optim.lr": 1e-3)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no config file {path}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        d = yaml.safe_load(text) or {}
    else:
        d = json.loads(text)
    for key, value in (overrides or {}).items():
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return config_from_dict(d)


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=1e-3' -> ('optim.lr', 0.001); values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    import yaml

    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)
