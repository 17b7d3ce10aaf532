"""Int8 weights for CPU inference: dynamic quantization of every linear layer.

One streaming step multiplies each weight matrix by a single vector, so on a CPU the step time is
the time to read the weights; int8 weights are a quarter of float32's bytes. Activations stay
float32 (quantized on the fly per call). Embedding tables stay float32 (they are only indexed).

    model = quantize_int8(model)     # in place; then LMGen(model)
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def _int8_linear(lin: nn.Linear) -> nn.Module:
    """A dynamic-int8 copy of lin, weights quantized per output channel (symmetric)."""
    from torch.ao.nn.quantized import dynamic as nnqd

    w = lin.weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
    zeros = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # torch marks the eager quantization API deprecated; it still works
        warnings.simplefilter("ignore")
        q = nnqd.Linear(lin.in_features, lin.out_features, bias_=lin.bias is not None, dtype=torch.qint8)
        qw = torch.quantize_per_channel(w, scales, zeros, 0, torch.qint8)
        q.set_weight_bias(qw, None if lin.bias is None else lin.bias.detach().float())
    return q


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` (subclasses included) below model by a dynamic int8 linear; CPU only."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 dynamic quantization runs on CPU; move the model to CPU first")
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, _int8_linear(child))
        else:
            quantize_int8(child)
    return model
