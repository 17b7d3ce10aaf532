"""Streaming building blocks shared by the codec and the LM."""

from .conv import StreamingConv1d, StreamingConvTranspose1d
from .streaming import State, StreamingContainer, StreamingModule
from .transformer import (ActivationGating, LayerScale, ProjectedTransformer, RMSNorm, StreamingMultiheadAttention,
                          StreamingTransformer, StreamingTransformerLayer, apply_rope, make_norm)

__all__ = [
    "ActivationGating", "LayerScale", "ProjectedTransformer", "RMSNorm", "State", "StreamingContainer",
    "StreamingConv1d", "StreamingConvTranspose1d", "StreamingModule", "StreamingMultiheadAttention",
    "StreamingTransformer", "StreamingTransformerLayer", "apply_rope", "make_norm",
]
