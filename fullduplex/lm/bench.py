"""``fullduplex bench lm``: streaming step time of the LM generator.

* small config (moshi-reference §3.2, random weights made by the ``moshi`` package): ours vs
  Kyutai's ``LMGen`` on the same weights, greedy, alternating in one run; min over repeats.
* a SmolLM2-135M-sized temporal transformer + an 8-codebook depth transformer (``smollm2_config``,
  random weights), float32 and int8 (dynamic quantization of every linear).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import torch

from .config import LMConfig
from .generate import LMGen
from .loading import load_kyutai
from .model import LMModel, random_lm

SMALL_CONFIG: dict[str, Any] = {
    "dim": 64, "text_card": 100, "existing_text_padding_id": 3, "n_q": 16, "dep_q": 8, "card": 64,
    "num_heads": 4, "num_layers": 2, "hidden_scale": 4.125, "causal": True, "layer_scale": None,
    "context": 50, "max_period": 10000, "gating": "silu", "norm": "rms_norm_f32",
    "positional_embedding": "rope", "depformer_dim": 32, "depformer_dim_feedforward": 132,
    "depformer_num_heads": 2, "depformer_num_layers": 2, "depformer_layer_scale": None,
    "depformer_multi_linear": True, "depformer_context": 8, "depformer_max_period": 10000,
    "depformer_gating": "silu", "depformer_pos_emb": "none", "depformer_weights_per_step": True,
    "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}


def _time_steps(gen, user: torch.Tensor, steps: int, outputs: list | None = None) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step over ``steps`` calls of gen.step (user: [B, K, >= steps]).

    On a shared machine the CPU time shows the work of a step even when the process waits for a core.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(steps):
        out = gen.step(user[:, :, t:t + 1])
        if outputs is not None:
            outputs.append(None if out is None else out.clone())
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def bench_small(steps: int = 50, repeats: int = 5, reference: bool = True) -> dict[str, Any]:
    """Ours vs moshi's LMGen on the small config (same weights, greedy)."""
    res: dict[str, Any] = {}
    user = torch.randint(0, SMALL_CONFIG["card"], (1, 8, steps), generator=torch.Generator().manual_seed(0))
    ref_gen = None
    if reference:
        try:
            os.environ.setdefault("NO_TORCH_COMPILE", "1")
            from moshi.models import LMGen as RefGen
            from moshi.models import loaders
        except ImportError:
            reference = False
    if reference:
        torch.manual_seed(0)
        ref = loaders.get_moshi_lm(None, lm_kwargs=dict(SMALL_CONFIG), device="cpu", dtype=torch.float32).eval()
        state = ref.state_dict()
        ref_gen = RefGen(ref, use_sampling=False)
    else:
        torch.manual_seed(0)
        state = LMModel(LMConfig.from_dict(SMALL_CONFIG)).state_dict()
    ours = load_kyutai(state, SMALL_CONFIG)
    gen = LMGen(ours, use_sampling=False)
    best_ours = best_ref = (float("inf"), float("inf"))
    match = None
    with torch.no_grad():
        for r in range(repeats):
            out_ours: list | None = [] if r == 0 else None
            with gen.streaming(1):
                best_ours = min(best_ours, _time_steps(gen, user, steps, out_ours))
            if ref_gen is not None:
                out_ref: list | None = [] if r == 0 else None
                with ref_gen.streaming(1):
                    best_ref = min(best_ref, _time_steps(ref_gen, user, steps, out_ref))
                if r == 0:
                    match = all((a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
                                for a, b in zip(out_ours, out_ref))
    res["ours_ms_per_step"] = round(best_ours[0] * 1e3, 3)
    res["reference_ms_per_step"] = round(best_ref[0] * 1e3, 3) if ref_gen is not None else None
    res["speedup"] = round(best_ref[0] / best_ours[0], 2) if ref_gen is not None else None
    res["ours_cpu_ms_per_step"] = round(best_ours[1] * 1e3, 3)
    res["reference_cpu_ms_per_step"] = round(best_ref[1] * 1e3, 3) if ref_gen is not None else None
    res["greedy_tokens_match_reference"] = match
    return res


def bench_135m(steps: int = 20, repeats: int = 3, warmup: int = 5, int8: bool = True,
               fp32: bool = True) -> dict[str, Any]:
    """Step time of a SmolLM2-135M-sized speech LM (random weights), float32 and int8."""
    from .quantize import quantize_int8
    from .smollm import smollm2_config

    cfg = smollm2_config()
    user = torch.randint(0, cfg.card, (1, cfg.num_user_codebooks, warmup + steps),
                         generator=torch.Generator().manual_seed(0))
    model = random_lm(cfg)
    res: dict[str, Any] = {
        "params_135m_config": sum(p.numel() for p in model.parameters()),
        "depformer_135m": f"dim {cfg.depformer_dim}, {cfg.depformer_num_layers} layers, "
                          f"{cfg.depformer_num_heads} heads, ff {cfg.depformer_dim_feedforward}, weights per step",
    }

    def run(m: LMModel, name: str) -> None:
        gen = LMGen(m, use_sampling=False)
        best = (float("inf"), float("inf"))
        with torch.no_grad():
            for _ in range(repeats):
                with gen.streaming(1):
                    _time_steps(gen, user, warmup)
                    best = min(best, _time_steps(gen, user[:, :, warmup:], steps))
        res[f"ms_per_step_135m_{name}"] = round(best[0] * 1e3, 2)
        res[f"cpu_ms_per_step_135m_{name}"] = round(best[1] * 1e3, 2)

    if fp32:
        run(model, "fp32")
    if int8:
        run(quantize_int8(model), "int8")
    best = [res[k] for k in ("ms_per_step_135m_int8", "ms_per_step_135m_fp32") if k in res]
    res["ms_per_step_135m"] = min(best) if best else None
    res["ms_per_step_135m_mode"] = "int8" if int8 and res["ms_per_step_135m"] == res.get("ms_per_step_135m_int8") \
        else "fp32"
    return res


def bench_lm(steps: int = 50, repeats: int = 5, threads: int | None = None, reference: bool = True,
             big: bool = True) -> dict[str, Any]:
    """All LM benchmarks in one JSON-able dict, with the conditions they ran under."""
    if threads is not None:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    res = bench_small(steps=steps, repeats=repeats, reference=reference)
    if big:
        res.update(bench_135m(steps=max(10, steps // 4), repeats=max(3, repeats)))
    res["conditions"] = {
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "machine": platform.machine(), "steps": steps, "repeats": repeats, "statistic": "min over repeats",
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    return res
