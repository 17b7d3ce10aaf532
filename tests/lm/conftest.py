import json
import os
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")  # before anything imports moshi

import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="session")
def small():
    """(Kyutai config dict, float32 state dict, teacher-forcing codes [1,17,24], user codes [1,8,64])."""
    cfg = json.loads((ASSETS / "small_lm.json").read_text())
    sd = load_file(str(ASSETS / "small_lm.safetensors"))
    codes, user = sd.pop("codes").long(), sd.pop("user").long()
    return cfg, {k: v.float() for k, v in sd.items()}, codes, user


@pytest.fixture(scope="session")
def ours(small):
    from fullduplex.lm import load_kyutai

    cfg, sd, _, _ = small
    return load_kyutai(sd, cfg)


@pytest.fixture(scope="session")
def reference(small):
    """Kyutai's LMModel with the same weights (the moshi package is the oracle)."""
    loaders = pytest.importorskip("moshi.models.loaders")
    cfg, sd, _, _ = small
    lm = loaders.get_moshi_lm(None, lm_kwargs=dict(cfg), device="cpu", dtype=torch.float32)
    lm.load_state_dict(sd)
    return lm.eval()


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread avoids OpenMP waits on a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
