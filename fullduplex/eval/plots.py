"""Report figures as PNG bytes: FTO histograms, stop-latency distributions, two-channel timelines."""

from __future__ import annotations

import io

import numpy as np

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
KIND_COLOR = {"floor_take": "tab:blue", "backchannel": "tab:green", "other": "tab:gray"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


def histograms(values: dict[str, list[float]], title: str, xlabel: str, lo: float, hi: float,
               step: float, human: tuple[float, float] | None = None) -> bytes:
    """One histogram per system (overlaid), values clipped to [lo, hi]."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.arange(lo, hi + step / 2, step)
    if human:
        ax.axvspan(*human, color="gold", alpha=0.25, label="human mode")
    for k, (name, v) in enumerate(values.items()):
        if v:
            ax.hist(np.clip(v, lo, hi), bins=bins, alpha=0.5, color=COLORS[k % len(COLORS)], label=f"{name} (n={len(v)})")
        else:
            ax.plot([], [], color=COLORS[k % len(COLORS)], label=f"{name} (none)")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def timeline(x_user: np.ndarray, outs: dict[str, tuple[np.ndarray, object]], meta: dict, sr: int = 16000) -> bytes:
    """Two-channel timeline of one item: the user's envelope on top, each system's below, its
    episodes as bars coloured by class, its words, and the item's event times."""
    plt = _plt()
    rows = 1 + len(outs)
    dur = len(x_user) / sr
    fig, axes = plt.subplots(rows, 1, figsize=(11, 1.3 * rows + 0.6), sharex=True)
    hop = sr // 100

    def env(ax, x, color):
        n = len(x) // hop
        e = np.abs(x[: n * hop]).reshape(n, hop).max(1)
        t = np.arange(n) / 100
        ax.fill_between(t, -e, e, color=color, lw=0, alpha=0.6)
        ax.set_ylim(-1.05, 1.05)
        ax.set_yticks([])

    env(axes[0], x_user / (np.abs(x_user).max() + 1e-9), "tab:orange")
    axes[0].set_ylabel("user", rotation=0, ha="right", fontsize=8)
    for k, (name, (y, an)) in enumerate(outs.items()):
        ax = axes[k + 1]
        env(ax, y / max(np.abs(y).max(), 1e-3) if np.abs(y).max() > 0 else y, "tab:blue")
        for ep in an.episodes:
            ax.plot([ep.start, ep.end], [-0.95, -0.95], lw=5, color=KIND_COLOR.get(ep.kind, "k"),
                    solid_capstyle="butt")
            ax.text(ep.start, 0.75, ep.kind if ep.kind != "floor_take" else "", fontsize=6)
        for w in an.words[:60]:
            ax.text(w[1], 0.35, w[0], fontsize=5, rotation=45)
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=8)
    for key, color in (("user_turn_end", "red"), ("pause", "purple"), ("barge_in", "red"), ("overlap", "red")):
        v = meta.get(key)
        if v is None:
            continue
        for ax in axes:
            if isinstance(v, list):
                ax.axvspan(v[0], v[1], color=color, alpha=0.12)
            else:
                ax.axvline(v, color=color, lw=1)
    axes[-1].set_xlim(0, dur)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(f"{meta.get('id', '')} ({meta.get('scenario', '?')}): user vs systems; bars: "
                      "episodes (blue floor take, green backchannel, grey other)", fontsize=9)
    fig.tight_layout()
    return _png(fig)
