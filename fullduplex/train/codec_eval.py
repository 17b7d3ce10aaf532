"""Codec quality on held-out voices: STOI, PESQ-wb, SI-SDR and DAC-style mel distance, and how
much each codebook does on them (``codebooks``: the share of each quantizer's input energy left
after each level, and the distinct codes each level uses over the clips' frames).

Clips of ``seconds`` seconds are cut from the channels of a conversation dataset spoken by the
given voices (starting at a word of that speaker, a fixed draw per ``seed``), encoded and decoded
in one batch call, and compared with the original (shared/reference/evaluation.md section 8).
"""

from __future__ import annotations

import numpy as np
import torch

from ..audio import resample
from ..codec import load_codec
from ..codec.losses import MultiScaleMelLoss
from .codec_data import read_crop, speech_channels


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref - ref.mean(), est - est.mean()
    alpha = float(np.dot(est, ref) / max(np.dot(ref, ref), 1e-12))
    target = alpha * ref
    return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.sum((est - target) ** 2), 1e-12)))


def held_out_clips(data: str, voices, clips: int, seconds: float, seed: int, sample_rate: int) -> np.ndarray:
    chans = speech_channels(data, include_voices=set(voices))
    if not chans:
        raise ValueError(f"{data}: no channel is spoken by {list(voices)}")
    rng = np.random.default_rng(seed)
    length = int(seconds * sample_rate)
    out = []
    for i in range(clips):
        c = chans[i % len(chans)]
        t = c.word_starts[rng.integers(len(c.word_starts))] - 0.1
        out.append(read_crop(c, int(t * sample_rate), length))
    return np.stack(out)


@torch.no_grad()
def evaluate_codec(checkpoint, data: str, voices, clips: int = 20, seconds: float = 4.0, seed: int = 0,
                   unquantized: bool = False) -> dict:
    """``unquantized``: decode the encoder's latent as it is instead of its codes: the autoencoder's
    ceiling, for a decoder that learned from such latents (``no_quantization_rate`` > 0); a decoder
    that only ever saw quantized latents is out of its depth there."""
    from pesq import pesq
    from pystoi import stoi

    codec = load_codec(checkpoint).eval()
    sr = codec.sample_rate
    x = held_out_clips(data, voices, clips, seconds, seed, sr)
    wav = torch.from_numpy(x)[:, None]
    z = codec.encode_latent(wav)
    levels = codec.quantizer.level_profile(z)
    y = (codec.decode_quantized(z) if unquantized else codec.decode(codec.quantizer.encode(z)))[..., : wav.shape[-1]]
    mel = float(MultiScaleMelLoss(sr)(y, wav))
    y = y[:, 0].numpy()
    s, p, sd = [], [], []
    for ref, est in zip(x, y):
        s.append(stoi(ref, est, sr, extended=False))
        r16, e16 = resample(ref, sr, 16_000), resample(est, sr, 16_000)
        try:
            p.append(pesq(16_000, r16, e16, "wb"))
        except Exception:  # PESQ refuses clips without detectable speech
            pass
        sd.append(si_sdr(ref, est))
    return {"checkpoint": str(checkpoint) if checkpoint else "bundled", "unquantized": unquantized,
            "voices": list(voices), "clips": clips,
            "seconds": seconds, "bitrate_kbps": round(codec.frame_rate * codec.num_codebooks
                                                       * np.log2(codec.cardinality) / 1000, 3),
            "stoi": round(float(np.mean(s)), 4), "pesq_wb": round(float(np.mean(p)), 4) if p else None,
            "si_sdr_db": round(float(np.mean(sd)), 3), "mel_distance": round(mel, 4),
            "codebooks": {**levels, "frames": int(z.shape[0] * z.shape[-1])}}
