"""Codec quality metrics (evaluation.md §8): STOI, PESQ (wb, nb), SI-SDR, DAC's mel distance."""

from __future__ import annotations

import numpy as np

from fullduplex.audio import resample


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR (dB): a = <est, ref> / |ref|^2, 10 log10(|a ref|^2 / |a ref - est|^2)."""
    ref = np.asarray(ref, np.float64) - np.mean(ref)
    est = np.asarray(est, np.float64) - np.mean(est)
    a = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    t = a * ref
    return float(10 * np.log10((np.dot(t, t) + 1e-12) / (np.dot(t - est, t - est) + 1e-12)))


def stoi(ref: np.ndarray, est: np.ndarray, sr: int) -> float:
    from pystoi import stoi as _stoi

    return float(_stoi(ref, est, sr, extended=False))


def pesq(ref: np.ndarray, est: np.ndarray, sr: int, mode: str) -> float | None:
    """PESQ wb (at 16 kHz) or nb (at 8 kHz); None when the signal has no utterance PESQ can find."""
    from pesq import pesq as _pesq

    rate = 16000 if mode == "wb" else 8000
    r, e = resample(ref, sr, rate), resample(est, sr, rate)
    try:
        return float(_pesq(rate, r, e, mode))
    except Exception:  # pesq raises NoUtterancesError & co on silent/garbage input
        return None


def _hz_to_mel(f):
    """Slaney mel scale (librosa's default, which DAC uses)."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters, Slaney area normalisation."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.maximum(0, np.minimum((freqs - lo) / max(c - lo, 1e-9), (hi - freqs) / max(hi - c, 1e-9)))
        fb[i] *= 2.0 / max(hi - lo, 1e-9)
    return fb


def mel_distance(ref: np.ndarray, est: np.ndarray, sr: int) -> float:
    """DAC's MelSpectrogramLoss: sum over 7 scales (window 32...2048, hop window/4, 5...320 mels) of
    the mean L1 distance between log10(max(mel magnitude, 1e-5))."""
    import torch

    x = torch.from_numpy(np.asarray(ref, np.float32))
    y = torch.from_numpy(np.asarray(est, np.float32))
    total = 0.0
    for win, n_mels in zip([32, 64, 128, 256, 512, 1024, 2048], [5, 10, 20, 40, 80, 160, 320]):
        fb = torch.from_numpy(mel_filters(sr, win, n_mels).astype(np.float32))
        w = torch.hann_window(win)
        mx, my = [(fb @ torch.stft(s, win, win // 4, window=w, return_complex=True).abs()).clamp(min=1e-5).log10()
                  for s in (x, y)]
        total += float((mx - my).abs().mean())
    return total
