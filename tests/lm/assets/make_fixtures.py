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
from fullduplex.lm.bench import SMALL_CONFIG as CONFIG  # noqa: E402

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
