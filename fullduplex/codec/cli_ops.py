"""What ``fullduplex codec encode|decode|roundtrip`` do, as functions of paths.

Codes files are ``.npz`` with ``codes`` int16 [K, T] (one mono stream) or [C, K, T] (one row per
channel), plus ``sample_rate``, ``frame_rate``, ``num_samples`` and ``num_channels``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .. import audio
from .model import Codec
from .weights import load_codec

log = logging.getLogger(__name__)


def _load(checkpoint, num_codebooks) -> Codec:
    return load_codec(checkpoint, num_codebooks=num_codebooks)


def encode_array(codec: Codec, wav: np.ndarray, streaming: bool = False) -> torch.Tensor:
    """wav [C, T] float32 at the codec's rate -> codes [C, K, frames] (channels encoded separately)."""
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[:, None]  # [C, 1, T]
    with torch.no_grad():
        if not streaming:
            return codec.encode(x)
        F = codec.frame_size
        pad = (-x.shape[-1]) % F
        x = torch.nn.functional.pad(x, (0, pad))
        with codec.streaming(x.shape[0]):
            return torch.cat([codec.encode(x[..., i:i + F]) for i in range(0, x.shape[-1], F)], dim=-1)


def decode_codes(codec: Codec, codes: torch.Tensor, streaming: bool = False) -> np.ndarray:
    """codes [C, K, T] -> wav [C, T * frame_size] float32."""
    with torch.no_grad():
        if not streaming:
            y = codec.decode(codes)
        else:
            with codec.streaming(codes.shape[0]):
                y = torch.cat([codec.decode(codes[..., t:t + 1]) for t in range(codes.shape[-1])], dim=-1)
    return y[:, 0].numpy()


def _read_input(codec: Codec, path, mix: bool) -> np.ndarray:
    wav, _ = audio.read(path, sample_rate=codec.sample_rate, channels=None)
    if wav.shape[0] > 2:
        raise audio.AudioError(f"{path}: {wav.shape[0]} channels; give mono or stereo audio")
    if mix and wav.shape[0] > 1:
        wav = audio.to_mono(wav)
    return wav


def encode_file(inp, out, checkpoint=None, num_codebooks=None, mix: bool = False) -> int:
    codec = _load(checkpoint, num_codebooks)
    wav = _read_input(codec, inp, mix)
    codes = encode_array(codec, wav)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, codes=codes.numpy().astype(np.int16), sample_rate=codec.sample_rate,
             frame_rate=codec.frame_rate, num_samples=wav.shape[-1], num_channels=wav.shape[0])
    tmp.replace(out)
    print(f"{inp}: {wav.shape[-1] / codec.sample_rate:.2f} s, {wav.shape[0]} channel(s) -> {out}: "
          f"{codes.shape[1]} codebooks x {codes.shape[2]} frames")
    return 0


def load_codes(path) -> tuple[torch.Tensor, int | None]:
    """Read a codes .npz -> (codes [C, K, T] int64, number of samples or None)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        with np.load(p) as z:
            if "codes" not in z:
                raise ValueError(f"{p}: no 'codes' array; was it written by `fullduplex codec encode`?")
            codes = z["codes"]
            n = int(z["num_samples"]) if "num_samples" in z else None
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"{p}: not a readable .npz codes file ({e})") from e
    if codes.ndim == 2:
        codes = codes[None]
    if codes.ndim != 3:
        raise ValueError(f"{p}: codes must be [K, T] or [C, K, T], got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{p}: codes must be integers, got {codes.dtype}")
    return torch.from_numpy(codes.astype(np.int64)), n


def decode_file(inp, out, checkpoint=None, num_codebooks=None) -> int:
    codec = _load(checkpoint, num_codebooks)
    codes, n = load_codes(inp)
    if num_codebooks is not None:
        if codes.shape[1] < num_codebooks:
            raise ValueError(f"{inp}: has {codes.shape[1]} codebooks, fewer than --num-codebooks {num_codebooks}")
        codes = codes[:, :num_codebooks]
    wav = decode_codes(codec, codes)
    if n is not None:
        wav = wav[:, :n]
    audio.write(out, wav, codec.sample_rate)
    print(f"{inp} -> {out}: {wav.shape[-1] / codec.sample_rate:.2f} s")
    return 0


def roundtrip_file(inp, out, checkpoint=None, num_codebooks=None, mix: bool = False, streaming: bool = False) -> int:
    codec = _load(checkpoint, num_codebooks)
    wav = _read_input(codec, inp, mix)
    codes = encode_array(codec, wav, streaming=streaming)
    y = decode_codes(codec, codes, streaming=streaming)[:, : wav.shape[-1]]
    audio.write(out, y, codec.sample_rate)
    kbps = codec.num_codebooks * np.log2(codec.cardinality) * codec.frame_rate / 1000
    print(f"{inp} -> {out}: {wav.shape[-1] / codec.sample_rate:.2f} s through {codec.num_codebooks} codebooks "
          f"({kbps:.2f} kbps)")
    return 0
