"""Timeline plot of one conversation: per-channel waveform envelope, VAD IPUs and the JSON words."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fullduplex.audio import read

from .format import ASSISTANT, CHANNEL, read_manifest
from .stats import item_ipus


def plot_timeline(root: str, out_png: str, index: int = 0, max_s: float = 60.0, vad: str = "energy") -> Path:
    """Draw item ``index`` of a dataset (first ``max_s`` seconds) to a PNG."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = read_manifest(root)[index]
    wav = Path(root) / e["path"]
    x, sr = read(wav, channels=2)
    ch_ipus, _ = item_ipus(wav, vad)
    js = wav.with_suffix(".json")
    doc = json.loads(js.read_text()) if js.exists() else {}
    end = min(x.shape[1] / sr, max_s)
    fig, ax = plt.subplots(figsize=(16, 4.5))
    colors = {0: "tab:blue", 1: "tab:orange"}
    for c, name in ((0, "assistant (L)"), (1, "user (R)")):
        y0 = 1.2 if c == 0 else 0.0
        hop = sr // 100
        n = int(end * sr) // hop
        env = np.abs(x[c, : n * hop]).reshape(n, hop).max(1)
        t = np.arange(n) / 100
        ax.fill_between(t, y0 - 0.4 * env / (env.max() + 1e-9), y0 + 0.4 * env / (env.max() + 1e-9),
                        color=colors[c], alpha=0.5, lw=0)
        for s, e2 in ch_ipus[c]:
            if s < end:
                ax.plot([s, min(e2, end)], [y0 - 0.5, y0 - 0.5], color=colors[c], lw=4, solid_capstyle="butt")
        ax.text(-0.5, y0, name, ha="right", va="center", fontsize=9)
    for w, (s, e2), spk in doc.get("alignments", []):
        if s < end:
            y = 1.75 if CHANNEL.get(spk, 0) == 0 else 0.55
            ax.text(s, y, w, fontsize=6, rotation=60, ha="left", va="bottom", color=colors[CHANNEL.get(spk, 0)])
    for ev in doc.get("events", []):
        if ev["start"] < end and ev["type"] in ("backchannel", "interruption"):
            y = 1.2 if ev["speaker"] == ASSISTANT else 0.0
            ax.annotate(ev["type"], (ev["start"], y + 0.45), fontsize=7, color="red",
                        arrowprops=dict(arrowstyle="->", color="red"), xytext=(ev["start"], y + 0.8))
    ax.set_xlim(-3, end)
    ax.set_ylim(-0.7, 2.4)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title(f"{e['path']}: waveform envelope, VAD IPUs (bars), words and events")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
