"""Low-rank adapters (LoRA) on the linear layers of a module.

    n = add_lora(model.transformer, rank=64, scaling=2.0)   # base weights frozen
    save_lora(model, "lora.safetensors")                      # only the adapters
    merge_lora(model.transformer)                             # fold them into the weights

A :class:`LoRALinear` keeps the base layer's ``weight`` (and ``bias``) under the same names, so the
model's state-dict keys do not change; it adds ``lora_A`` [rank, in] (random) and ``lora_B``
[out, rank] (zeros, so training starts from the base model) and computes
y = x W^T + b + scaling x (x A^T) B^T.

An adapter checkpoint folder (``lora.json`` + ``lora.safetensors``, written and read by
:mod:`fullduplex.lm.loading`) stores these adapters and the other trained tensors; the frozen base
is rebuilt when it is loaded.
"""

from __future__ import annotations

import math

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from ..nn.fast import Linear as FastLinear

ADAPTER_SUFFIXES = (".lora_A", ".lora_B")
# the pretrained text backbone of an LMModel: what LoRA training freezes (adapters go on transformer.)
TEXT_BACKBONE = ("text_emb.", "transformer.", "out_norm.", "text_linear.")


class LoRALinear(nn.Linear):
    def __init__(self, base: nn.Linear, rank: int, scaling: float):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank, self.scaling = rank, scaling
        dev, dt = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, device=dev, dtype=torch.float32))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=dev, dtype=torch.float32))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self._base_dtype = dt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        a = F.linear(x.to(self.lora_A.dtype), self.lora_A)
        return y + (self.scaling * F.linear(a, self.lora_B)).to(y.dtype)

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        return (self.weight.float() + self.scaling * self.lora_B @ self.lora_A).to(self.weight.dtype)


def add_lora(module: nn.Module, rank: int, scaling: float) -> int:
    """Replace every nn.Linear under ``module`` by a LoRALinear; returns how many were wrapped."""
    if rank <= 0:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    n = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear) and not isinstance(child, LoRALinear):
            setattr(module, name, LoRALinear(child, rank, scaling))
            n += 1
        else:
            n += add_lora(child, rank, scaling)
    return n


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.endswith(ADAPTER_SUFFIXES)}


def cast_floats(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The floating tensors of ``state`` in ``dtype`` (integer tensors as they are); refuses a cast
    that turns a finite value into an infinity (float16 tops out at 65504)."""
    if dtype is None:
        return dict(state)
    out = {}
    for k, v in state.items():
        if v.is_floating_point() and v.dtype != dtype:
            w = v.to(dtype)
            if bool((torch.isinf(w) & torch.isfinite(v)).any()):
                raise ValueError(f"{k} has values beyond the range of {dtype}; export it in float32")
            v = w
        out[k] = v
    return out


INT8_SCALE = ".int8_scale"  # key suffix of the per-row scales of a tensor stored as int8


def pack_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store every floating matrix (2-D or more) as int8 with one float16 scale per row
    (symmetric, absmax / 127); vectors go to float16. About half the size of float16 storage;
    :func:`unpack_int8` reverses it (to float32)."""
    out = {}
    for k, v in state.items():
        if k.endswith(INT8_SCALE):
            raise ValueError(f"tensor name {k!r} ends with the reserved suffix {INT8_SCALE!r}")
        if not v.is_floating_point():
            out[k] = v
        elif v.dim() < 2:
            out[k] = cast_floats({k: v}, torch.float16)[k]
        else:
            rows = v.detach().float().reshape(v.shape[0], -1)
            scale = (rows.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
            scale = scale.to(torch.float16).float().clamp_min(6e-8)  # what is stored is what divides
            out[k] = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(v.shape)
            out[k + INT8_SCALE] = scale.to(torch.float16)
    return out


def unpack_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 tensors of a state written by :func:`pack_int8` (other states come back as they are)."""
    scales = {k[: -len(INT8_SCALE)]: v for k, v in state.items() if k.endswith(INT8_SCALE)}
    out = {}
    for k, v in state.items():
        if k.endswith(INT8_SCALE):
            if k[: -len(INT8_SCALE)] not in state:
                raise ValueError(f"{k}: a scale without its int8 tensor")
        elif k in scales:
            s = scales[k].float()
            if v.dtype != torch.int8 or s.shape != (v.shape[0],):
                raise ValueError(f"{k}: int8 storage needs an int8 tensor and one scale per row, got {v.dtype} "
                                 f"{tuple(v.shape)} with scales {tuple(s.shape)}")
            out[k] = (v.float().reshape(v.shape[0], -1) * s[:, None]).reshape(v.shape)
        else:
            out[k] = v
    return out


def encode_state(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """``state`` as stored in ``dtype``: a float dtype casts (:func:`cast_floats`), torch.int8 packs
    (:func:`pack_int8`), None keeps it as it is."""
    return pack_int8(state) if dtype == torch.int8 else cast_floats(state, dtype)


def save_lora(model: nn.Module, path, extra: dict[str, torch.Tensor] | None = None,
              dtype: torch.dtype | None = None) -> None:
    """Write the adapters (and ``extra`` tensors) to a safetensors file; ``dtype`` casts the floating
    ones (torch.int8: per-row int8, see :func:`pack_int8`)."""
    state = {k: v.detach().contiguous() for k, v in {**lora_state(model), **(extra or {})}.items()}
    save_file(encode_state(state, dtype), str(path))


def load_lora(model: nn.Module, path) -> None:
    """Load adapters (and any extra tensors saved with them) into a model that has LoRA layers."""
    state = unpack_int8(load_file(str(path)))
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{path}: tensors {unknown[:4]} are not in the model (add_lora with the same targets first)")
    model.load_state_dict({k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state.items()},
                          strict=False)


@torch.no_grad()
def merge_lora(module: nn.Module) -> int:
    """Fold every adapter into its base weight and put plain linear layers back."""
    n = 0
    for name, child in list(module.named_children()):
        if isinstance(child, LoRALinear):
            lin = FastLinear(child.in_features, child.out_features, bias=child.bias is not None,
                            device=child.weight.device, dtype=child.weight.dtype)
            lin.weight.copy_(child.merged_weight())
            if child.bias is not None:
                lin.bias.copy_(child.bias)
            setattr(module, name, lin)
            n += 1
        else:
            n += merge_lora(child)
    return n
