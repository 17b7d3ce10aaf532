"""The Mimi-style streaming neural audio codec."""

from .config import CodecConfig, mimi_config, tiny_config
from .model import Codec
from .weights import load_codec, randomize_codebooks, save_codec, with_decoder

__all__ = ["Codec", "CodecConfig", "load_codec", "mimi_config", "randomize_codebooks", "save_codec", "tiny_config",
           "with_decoder"]
