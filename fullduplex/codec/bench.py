"""``fullduplex bench codec``: streaming encode+decode per 80 ms frame, ours vs Kyutai's ``moshi``.

Both implementations get the same random weights (codebooks randomised, since they start at zero)
and the same input; each repeat streams ``frames`` frames through encode then decode, and the
minimum over repeats is reported (the machine may be shared).
"""

from __future__ import annotations

import os
import time

import torch

from .config import PRESETS
from .model import Codec
from .weights import randomize_codebooks


def _time_streaming(encode, decode, streaming, wav: torch.Tensor, frames: int, repeats: int, frame_size: int):
    """Best ms per frame over repeats, and the decoded audio of the last repeat."""
    best, out = float("inf"), None
    for _ in range(repeats):
        chunks = []
        with torch.no_grad(), streaming(1):
            encode(wav[..., :frame_size])  # warm-up frame (not timed), then restart the stream
        with torch.no_grad(), streaming(1):
            t0 = time.perf_counter()
            for i in range(frames):
                codes = encode(wav[..., i * frame_size:(i + 1) * frame_size])
                chunks.append(decode(codes))
            dt = (time.perf_counter() - t0) / frames
        best, out = min(best, dt), torch.cat(chunks, dim=-1)
    return best * 1000, out


def bench_codec(config: str = "mimi", frames: int = 25, repeats: int = 3, threads: int | None = None,
                reference: bool = True, seed: int = 0) -> dict:
    if threads:
        torch.set_num_threads(threads)
    cfg = PRESETS[config]()
    torch.manual_seed(seed)
    ours = Codec(cfg).eval()  # PyTorch's default initialisation
    g = torch.Generator().manual_seed(seed + 1)
    wav = 0.1 * torch.randn(1, 1, frames * cfg.frame_size, generator=g)
    randomize_codebooks(ours, seed, wav=wav)  # centroids around the latent, so codes follow the input

    ours_ms, ours_out = _time_streaming(ours.encode, ours.decode, ours.streaming, wav, frames, repeats,
                                        cfg.frame_size)
    res = {"config": config, "frames": frames, "repeats": repeats, "threads": torch.get_num_threads(),
           "parameters": ours.num_parameters(), "ours_ms_per_frame": round(ours_ms, 3),
           "rtf": round(ours_ms / (1000 / cfg.frame_rate), 4),
           "output_rms": float(ours_out.pow(2).mean().sqrt())}
    if reference:
        ref = _reference_mimi(cfg, ours)
        ref_ms, ref_out = _time_streaming(ref.encode, ref.decode, ref.streaming, wav, frames, repeats,
                                          cfg.frame_size)
        res.update({"reference_ms_per_frame": round(ref_ms, 3), "speedup": round(ref_ms / ours_ms, 3),
                    "reference_rtf": round(ref_ms / (1000 / cfg.frame_rate), 4),
                    "max_abs_diff": float((ours_out - ref_out).abs().max())})
    return res


def _reference_mimi(cfg, ours: Codec):
    """Kyutai's MimiModel with the same architecture and weights as ``ours``."""
    os.environ.setdefault("NO_TORCH_COMPILE", "1")
    try:
        from moshi.models import loaders
    except ImportError as e:
        raise RuntimeError("the reference needs Kyutai's `moshi` package: "
                           "pip install --no-deps moshi==0.2.13 einops (or pass --no-reference)") from e
    ref = loaders.get_mimi(None, cfg.to_kyutai(), num_codebooks=cfg.num_codebooks)
    ref.load_state_dict(ours.state_dict())
    return ref.eval()
