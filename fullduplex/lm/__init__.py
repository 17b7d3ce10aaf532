"""The multistream speech-text LM (Moshi architecture): model, loss, streaming generator, text stream."""

from .config import LMConfig
from .generate import LMGen, sample_token
from .loading import load_checkpoint, load_kyutai, save_checkpoint
from .model import LMModel, LMOutput

__all__ = ["LMConfig", "LMGen", "LMModel", "LMOutput", "load_checkpoint", "load_kyutai", "sample_token",
           "save_checkpoint"]
