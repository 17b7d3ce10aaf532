"""The multistream speech-text LM (Moshi architecture): model, loss, streaming generator, text stream.

    from fullduplex.lm import load_kyutai, LMGen
    lm = load_kyutai("model.safetensors", kyutai_lm_kwargs)       # or smollm2_lm() / load_checkpoint(dir)
    gen = LMGen(lm, temp=0.8, temp_text=0.7)
    with gen.streaming(batch_size=1):
        out = gen.step(user_codes)   # [1, 8, 1] -> None, then [1, 1 + 8, 1]: text token + audio codes
"""

from .config import LMConfig
from .generate import LMGen, sample_token
from .loading import load_checkpoint, load_kyutai, save_checkpoint, save_lora_checkpoint
from .loss import LMLoss, lm_loss
from .model import LMModel, LMOutput
from .quantize import quantize_int8
from .smollm import load_smollm2_tokenizer, smollm2_config, smollm2_lm
from .text import TextTokenizer, text_stream

__all__ = ["LMConfig", "LMGen", "LMLoss", "LMModel", "LMOutput", "TextTokenizer", "lm_loss", "load_checkpoint",
           "load_kyutai", "load_smollm2_tokenizer", "quantize_int8", "sample_token", "save_checkpoint",
           "save_lora_checkpoint", "smollm2_config", "smollm2_lm", "text_stream"]
