"""Quality checks for a real two-channel recording; each returns a reject reason or None.

Thresholds live in :class:`Checks`. Reasons are stable strings used in the ingest report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activity import energy_activity


@dataclass
class Checks:
    min_duration_s: float = 2.0
    max_duration_s: float = 4 * 3600.0
    clip_level: float = 0.999
    max_clipped_fraction: float = 1e-3
    min_active_fraction: float = 0.02    # of 10 ms frames, per channel
    min_peak_db: float = -50.0
    max_leakage_corr: float = 0.3


def duration(x: np.ndarray, sr: int, c: Checks) -> str | None:
    d = x.shape[1] / sr
    if d < c.min_duration_s:
        return f"too_short: {d:.2f} s < {c.min_duration_s} s"
    if d > c.max_duration_s:
        return f"too_long: {d:.0f} s > {c.max_duration_s:.0f} s; split it first"
    return None


def clipping(x: np.ndarray, sr: int, c: Checks) -> str | None:
    for ch, name in enumerate(("left", "right")):
        frac = float(np.mean(np.abs(x[ch]) >= c.clip_level))
        if frac > c.max_clipped_fraction:
            return f"clipping: {100 * frac:.2f} % of {name} samples at full scale; re-record with less gain"
    return None


def silence(x: np.ndarray, sr: int, c: Checks) -> str | None:
    for ch, name in enumerate(("left", "right")):
        peak = 20 * np.log10(float(np.abs(x[ch]).max()) + 1e-12)
        active = float(np.mean(energy_activity(x[ch], sr))) if peak > c.min_peak_db else 0.0
        if peak <= c.min_peak_db or active < c.min_active_fraction:
            return f"silent_channel: {name} channel has no speech (peak {peak:.0f} dBFS, {100 * active:.1f} % active)"
    return None


def leakage_corr(x: np.ndarray, sr: int, max_lag_s: float = 0.01, max_s: float = 120.0) -> float:
    """Largest |normalised cross-correlation| (lags within +-10 ms) between the channels, measured
    where one channel is active: ~0 for independent speakers, high when one channel hears the other."""
    best = 0.0
    n = min(x.shape[1], int(max_s * sr))
    hop = int(0.01 * sr)
    lag = int(max_lag_s * sr)
    for src in (0, 1):
        act = energy_activity(x[src, :n], sr)
        idx = np.nonzero(np.repeat(act, hop))[0]
        if len(idx) < sr // 2:
            continue
        a, b = x[src, idx], x[1 - src, idx]
        a = a - a.mean()
        b = b - b.mean()
        m = 1 << int(np.ceil(np.log2(2 * len(a))))
        cc = np.fft.irfft(np.fft.rfft(a, m) * np.conj(np.fft.rfft(b, m)), m)
        cc = np.concatenate([cc[-lag:], cc[: lag + 1]])
        denom = np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12
        best = max(best, float(np.abs(cc).max() / denom))
    return best


def leakage(x: np.ndarray, sr: int, c: Checks) -> str | None:
    r = leakage_corr(x, sr)
    if r > c.max_leakage_corr:
        return (f"leakage: the channels correlate ({r:.2f} > {c.max_leakage_corr}); one speaker is heard on the "
                "other's channel (use headsets or echo cancellation)")
    return None


ALL = (duration, clipping, silence, leakage)


def run_checks(x: np.ndarray, sr: int, c: Checks) -> str | None:
    """The first failing check's reason, or None when the stereo audio [2, T] is usable."""
    for check in ALL:
        reason = check(x, sr, c)
        if reason:
            return reason
    return None
