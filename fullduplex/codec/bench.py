"""``fullduplex bench codec``: streaming encode+decode per 80 ms frame, ours vs Kyutai's ``moshi``.

Both implementations get the same random weights (codebooks randomised, since they start at zero)
and the same input; each repeat streams ``frames`` frames through encode then decode, ours and the
reference taking turns; the best repeat of each is reported, with the medians (the machine may be
shared). With ``decoder="istft"`` ours decodes with the inverse-STFT decoder (codec/istft.py) and
the reference keeps Mimi's SEANet decoder: the speed-up is then the decoder's, and the outputs
are not compared.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from .config import PRESETS
from .model import Codec
from .weights import randomize_codebooks, with_decoder


def _time_once(codec, wav: torch.Tensor, frames: int, frame_size: int) -> tuple[float, torch.Tensor]:
    """ms per frame of one streaming pass over ``frames`` frames, and its decoded audio."""
    chunks = []
    with torch.no_grad(), codec.streaming(1):
        codec.encode(wav[..., :frame_size])  # warm-up frame (not timed), then restart the stream
    with torch.no_grad(), codec.streaming(1):
        t0 = time.perf_counter()
        for i in range(frames):
            codes = codec.encode(wav[..., i * frame_size:(i + 1) * frame_size])
            chunks.append(codec.decode(codes))
        dt = (time.perf_counter() - t0) / frames
    return dt * 1000, torch.cat(chunks, dim=-1)


def bench_codec(config: str = "mimi", frames: int = 25, repeats: int = 5, threads: int | None = None,
                reference: bool = True, seed: int = 0, decoder: str = "seanet") -> dict:
    """Both implementations take turns, one pass each per repeat, so a slow moment of a shared machine
    falls on both; the best pass of each gives ``speedup``, and the medians are reported beside it."""
    if threads:
        torch.set_num_threads(threads)
    cfg = PRESETS[config]()
    torch.manual_seed(seed)
    ours = Codec(cfg).eval()  # PyTorch's default initialisation
    g = torch.Generator().manual_seed(seed + 1)
    wav = 0.1 * torch.randn(1, 1, frames * cfg.frame_size, generator=g)
    randomize_codebooks(ours, seed, wav=wav)  # centroids around the latent, so codes follow the input
    ref = _reference_mimi(cfg, ours) if reference else None
    if decoder != "seanet":
        ours = with_decoder(ours, {"decoder": decoder})

    ours_ms, ref_ms = [], []
    for _ in range(repeats):
        ms, ours_out = _time_once(ours, wav, frames, cfg.frame_size)
        ours_ms.append(ms)
        if ref is not None:
            ms, ref_out = _time_once(ref, wav, frames, cfg.frame_size)
            ref_ms.append(ms)
    best = min(ours_ms)
    res = {"config": config, "decoder": decoder, "frames": frames, "repeats": repeats, "threads": torch.get_num_threads(),
           "parameters": ours.num_parameters(), "ours_ms_per_frame": round(best, 3),
           "ours_ms_per_frame_median": round(statistics.median(ours_ms), 3),
           "rtf": round(best / (1000 / cfg.frame_rate), 4),
           "output_rms": float(ours_out.pow(2).mean().sqrt())}
    if ref is not None:
        ref_best = min(ref_ms)
        res.update({"reference_ms_per_frame": round(ref_best, 3),
                    "reference_ms_per_frame_median": round(statistics.median(ref_ms), 3),
                    "speedup": round(ref_best / best, 3),
                    "speedup_median": round(statistics.median(ref_ms) / statistics.median(ours_ms), 3),
                    "reference_rtf": round(ref_best / (1000 / cfg.frame_rate), 4)})
        if decoder == "seanet":
            res["max_abs_diff"] = float((ours_out - ref_out).abs().max())
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
