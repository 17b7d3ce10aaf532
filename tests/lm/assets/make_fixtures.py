"""Writes the small random-weight LM fixture with the `moshi` reference package (run once).

    NO_TORCH_COMPILE=1 python tests/lm/assets/make_fixtures.py

small_lm.json: Kyutai LMModel kwargs (moshi-reference.md §3.2); small_lm.safetensors: its weights
(float16 to keep the file small; both implementations load them as float32) plus `codes`
[1, 17, 24] for teacher forcing and `user` [1, 8, 64] user codes for streaming generation.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
import torch  # noqa: E402
from moshi.models import loaders  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = Path(__file__).parent
CONFIG = {
    "dim": 64, "text_card": 100, "existing_text_padding_id": 3, "n_q": 16, "dep_q": 8, "card": 64,
    "num_heads": 4, "num_layers": 2, "hidden_scale": 4.125, "causal": True, "layer_scale": None,
    "context": 50, "max_period": 10000, "gating": "silu", "norm": "rms_norm_f32",
    "positional_embedding": "rope", "depformer_dim": 32, "depformer_dim_feedforward": 132,
    "depformer_num_heads": 2, "depformer_num_layers": 2, "depformer_layer_scale": None,
    "depformer_multi_linear": True, "depformer_context": 8, "depformer_max_period": 10000,
    "depformer_gating": "silu", "depformer_pos_emb": "none", "depformer_weights_per_step": True,
    "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}

if __name__ == "__main__":
    torch.manual_seed(0)
    lm = loaders.get_moshi_lm(None, lm_kwargs=CONFIG, device="cpu", dtype=torch.float32)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in lm.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 64, (1, 17, 24), generator=g)
    codes[:, 0] = torch.randint(0, 100, (1, 24), generator=g)
    codes[:, 0, 20:] = -1  # a few zero tokens: no input, no loss
    tensors["codes"] = codes.to(torch.int32)
    tensors["user"] = torch.randint(0, 64, (1, 8, 64), generator=g).to(torch.int32)
    save_file(tensors, HERE / "small_lm.safetensors")
    (HERE / "small_lm.json").write_text(json.dumps(CONFIG, indent=1) + "\n")
    print(sum(v.numel() for k, v in lm.state_dict().items()), "parameters")
