"""Training: one loop (train/loop.py) for both models, with the codec and LM objectives plugged in.

    fullduplex train codec --config configs/codec_small.yaml [--resume]
    fullduplex train lm --config configs/lm_debug.yaml [--resume]
"""

from .config import TrainConfig, load_config
from .loop import train

__all__ = ["TrainConfig", "load_config", "train"]
