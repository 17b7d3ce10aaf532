"""fullduplex: full-duplex speech-to-speech AI in Python.

Layers (imports point down only): cli -> server/eval/train -> systems -> codec/lm -> nn
-> data/engines/audio.
"""

__version__ = "0.1.0"
