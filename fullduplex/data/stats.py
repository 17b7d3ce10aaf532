"""Turn-taking statistics of two-channel conversations (dGSLM definitions, 200 ms), from VAD.

- IPU: speech in one channel delimited by > 200 ms of silence on both sides.
- pause: silence between two IPUs of the same speaker with no one speaking in between.
- gap / overlap at a floor transfer: the next turn's speaker starts after (gap) or before (overlap)
  the previous speaker's IPU ends; FTO = next start - previous end (negative = overlap).
- backchannel: an IPU <= 1 s of the listener while the speaker holds the floor (the speaker talked
  within 1 s before it and resumes before the listener says anything else).
- overlap_share: the share of floor transfers that overlap (humans ~0.40, CANDOR 0.48).
- barge-in stop latency: for each barge-in an item's events script (`data synth` writes them), the
  time from the user's onset to the end of the assistant IPU it cuts into. A model that learns from
  the data cannot stop sooner than this; M9 measures the same interval on a model's output.
- backchannels in long turns: for the backchannels an item's events script, how many each listener
  makes per minute of the other speaker's long turns (monologues: at least 6 s, with a pause in
  them). A model learns the assistant's rate; M5 measures the same rate on a model's output in the
  user's monologues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fullduplex.audio import read

from .activity import channel_segments
from .format import USER, read_item, read_manifest

IPU_GAP_S = 0.2
BC_MAX_S = 1.0
LONG_TURN_S = 6.0
HUMAN_REFERENCE = {
    "fto_median_s": "0.0-0.2 (mode 0-200 ms; English mean ~0.24; CANDOR median between-speaker interval 0.08)",
    "overlap_share": "0.40-0.42 (Heldner & Edlund 2010); 0.48 (CANDOR)",
    "gap_median_s": "0.38 (CANDOR)",
    "overlap_median_s": "0.41 (CANDOR)",
    "turn_length_s": "~2 (Levinson)",
    "backchannel_onset_median_s": "0.14 after the partner's phrase end",
    "events_per_min": "IPU 35.3, pause 10.5, gap 8.5, overlap 3.0 (Hindi conversational ground truth)",
}


def merge_segments(segs, gap: float) -> list[list[float]]:
    """Sorted [start, end] segments (seconds), joined where the silence between them is <= gap."""
    out: list[list[float]] = []
    for s, e in segs:
        if out and s - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([float(s), float(e)])
    return out


def ipus(segs: np.ndarray) -> np.ndarray:
    """Merge VAD segments [N, 2] separated by <= 200 ms into IPUs [M, 2]."""
    return np.array(merge_segments(segs, IPU_GAP_S), dtype=np.float64).reshape(-1, 2)


@dataclass
class Events:
    """Raw event durations (s) of one or more conversations, and their total duration."""

    minutes: float
    ipu: list
    pause: list
    fto: list
    backchannel: int
    talk: list  # seconds per channel [assistant, user]
    overlap_time: float
    stops: list = field(default_factory=list)  # (scripted, measured) barge-in stop latencies
    long_turn_bcs: list = field(default_factory=list)  # (listener, backchannels, long turn s), scripted

    def __add__(self, o: "Events") -> "Events":
        return Events(self.minutes + o.minutes, self.ipu + o.ipu, self.pause + o.pause, self.fto + o.fto,
                      self.backchannel + o.backchannel, [a + b for a, b in zip(self.talk, o.talk)],
                      self.overlap_time + o.overlap_time, self.stops + o.stops,
                      self.long_turn_bcs + o.long_turn_bcs)


def conversation_events(ch_ipus: list[np.ndarray], duration_s: float) -> Events:
    """Events of one conversation from the IPUs [N, 2] of channel 0 and channel 1."""
    items = sorted([(s, e, c) for c in (0, 1) for s, e in ch_ipus[c]])
    # backchannels: short listener IPUs while the other speaker holds the floor
    is_bc = [False] * len(items)
    for i, (s, e, c) in enumerate(items):
        if e - s > BC_MAX_S:
            continue
        other = ch_ipus[1 - c]
        before = other[(other[:, 0] < s) & (other[:, 1] > s - 1.0)]
        after_other = other[other[:, 0] >= s - 1e-9]
        own_next = [it for it in items[i + 1:] if it[2] == c]
        resumes = len(after_other) and (not own_next or after_other[0, 0] < own_next[0][0])
        inside = len(other) and ((other[:, 0] <= s) & (other[:, 1] >= e)).any()
        if inside or (len(before) and resumes):
            is_bc[i] = True
    floor = [it for it, bc in zip(items, is_bc) if not bc]
    pauses, fto = [], []
    last_end = {0: None, 1: None}
    cur = None  # speaker holding the floor
    for s, e, c in floor:
        if cur is None:
            cur = c
        elif c == cur:
            if last_end[c] is not None and s > last_end[c]:
                other_end = last_end[1 - c]
                if other_end is None or other_end <= last_end[c]:
                    pauses.append(s - last_end[c])
        else:
            if last_end[cur] is not None:
                fto.append(s - last_end[cur])
            cur = c
        last_end[c] = max(e, last_end[c] or e)
    talk = [float((x[:, 1] - x[:, 0]).sum()) for x in ch_ipus]
    ov = 0.0
    for s, e in ch_ipus[0]:
        o = ch_ipus[1]
        ov += float(np.clip(np.minimum(o[:, 1], e) - np.maximum(o[:, 0], s), 0, None).sum())
    return Events(duration_s / 60, [float(e - s) for s, e, _ in items], pauses, fto, int(sum(is_bc)),
                  talk, ov)


def barge_in_stops(events: list[dict], assistant: np.ndarray) -> list[tuple[float, float]]:
    """(scripted, measured) stop latency (s) of each barge-in in an item's ``events``.

    Scripted: the event's ``reaction_s``. Measured: from the user's onset to the end of the assistant
    IPU [N, 2] around it. A barge-in with no assistant speech within 0.1 s of its onset is skipped.
    """
    out = []
    for e in events:
        if e.get("type") != "interruption":
            continue
        t = float(e["start"])
        around = assistant[(assistant[:, 0] <= t + 0.1) & (assistant[:, 1] >= t - 0.1)]
        if len(around):
            out.append((float(e["reaction_s"]), float(around[-1, 1] - t)))
    return out


def long_turn_backchannels(events: list[dict]) -> list[tuple[str, int, float]]:
    """(listener, backchannels, seconds) of each long turn (>= LONG_TURN_S, with a pause in it) in an
    item's ``events``: how many backchannels the listener made while the speaker held the floor."""
    def inside(kind, a, b):
        return [e for e in events if e.get("type") == kind and a <= float(e["start"]) <= b]

    out = []
    for t in (e for e in events if e.get("type") == "turn"):
        spk, a, b = t["speaker"], float(t["start"]), float(t["end"])
        if b - a < LONG_TURN_S or not any(e.get("speaker") == spk for e in inside("pause", a, b)):
            continue
        bcs = [e for e in inside("backchannel", a, b) if e.get("speaker") != spk]
        out.append(("assistant" if spk == USER else "user", len(bcs), b - a))
    return out


def summarize(ev: Events) -> dict:
    """The numbers `data stats` prints (durations in s, rates per minute)."""
    fto = np.array(ev.fto)
    m = max(ev.minutes, 1e-9)
    gaps, ovs = fto[fto >= 0], -fto[fto < 0]

    def med(x):
        return round(float(np.median(x)), 3) if len(x) else None

    def bc_rate(listener):
        rows = [(n, sec) for who, n, sec in ev.long_turn_bcs if who == listener]
        floor_s = sum(sec for _, sec in rows)
        return round(60 * sum(n for n, _ in rows) / floor_s, 2) if floor_s else None

    hist, edges = np.histogram(np.clip(fto, -1.5, 1.5), bins=np.arange(-1.5, 1.55, 0.1)) if len(fto) else ([], [])
    return {
        "hours": round(ev.minutes / 60, 4),
        "fto_median_s": med(fto),
        "fto_mean_s": round(float(fto.mean()), 3) if len(fto) else None,
        "overlap_share": round(len(ovs) / len(fto), 3) if len(fto) else None,
        "backchannels_per_min": round(ev.backchannel / m, 2),
        "ipus_per_min": round(len(ev.ipu) / m, 2),
        "pauses_per_min": round(len(ev.pause) / m, 2),
        "gaps_per_min": round(len(gaps) / m, 2),
        "overlaps_per_min": round(len(ovs) / m, 2),
        "ipu_median_s": med(ev.ipu),
        "pause_median_s": med(ev.pause),
        "gap_median_s": med(gaps),
        "overlap_median_s": med(ovs),
        "overlap_time_share": round(ev.overlap_time / (60 * m), 4),
        "talk_share": {"assistant": round(ev.talk[0] / (60 * m), 3), "user": round(ev.talk[1] / (60 * m), 3)},
        "barge_ins_per_min": round(len(ev.stops) / m, 2),
        "barge_in_stop_median_s": med([x for _, x in ev.stops]),
        "barge_in_stop_scripted_median_s": med([x for x, _ in ev.stops]),
        "long_turn_backchannels_per_min": {"assistant": bc_rate("assistant"), "user": bc_rate("user")},
        "fto_histogram": {"bin_edges_s": [round(float(x), 2) for x in edges], "counts": [int(c) for c in hist]},
        "human_reference": HUMAN_REFERENCE,
    }


def item_ipus(path: str | Path, vad: str = "energy") -> tuple[list[np.ndarray], float]:
    x, sr = read(path, channels=2)
    return [ipus(s) for s in channel_segments(x, sr, vad)], x.shape[1] / sr


def dataset_stats(root: str, vad: str = "energy", limit: int | None = None) -> dict:
    """Statistics over every item of a dataset folder (or the first ``limit``)."""
    entries = read_manifest(root)[:limit]
    if not entries:
        raise ValueError(f"{root}: the manifest lists no items")
    total = None
    for e in entries:
        ch, dur = item_ipus(Path(root) / e["path"], vad)
        ev = conversation_events(ch, dur)
        events = read_item(root, e["path"], with_audio=False).meta.get("events", [])
        ev.stops = barge_in_stops(events, ch[0])
        ev.long_turn_bcs = long_turn_backchannels(events)
        total = ev if total is None else total + ev
    out = summarize(total)
    out["items"] = len(entries)
    out["vad"] = vad
    return out


def format_table(s: dict) -> str:
    """Human-readable report next to the human reference numbers."""
    lines = [f"{s['items']} conversations, {s['hours']:.3f} h (VAD: {s['vad']})"]
    for k in ("ipus_per_min", "pauses_per_min", "gaps_per_min", "overlaps_per_min", "backchannels_per_min",
              "ipu_median_s", "pause_median_s", "gap_median_s", "overlap_median_s", "fto_median_s",
              "overlap_share", "overlap_time_share"):
        ref = HUMAN_REFERENCE.get(k, "")
        lines.append(f"{k:>22}: {str(s[k]):>8}   {ref}")
    lines.append(f"{'talk_share':>22}: assistant {s['talk_share']['assistant']}, user {s['talk_share']['user']}")
    if s["barge_ins_per_min"]:
        lines.append(f"{'barge_ins_per_min':>22}: {s['barge_ins_per_min']:>8}   scripted by the items' events")
        lines.append(f"{'barge_in_stop_median_s':>22}: {s['barge_in_stop_median_s']:>8}   user onset -> end of the "
                     f"assistant's speech (scripted: {s['barge_in_stop_scripted_median_s']})")
    bc = s["long_turn_backchannels_per_min"]
    if bc["assistant"] is not None or bc["user"] is not None:
        lines.append(f"{'long-turn backchannels':>22}: assistant {bc['assistant']}, user {bc['user']} a minute of the "
                     "other's long turns, scripted (humans ~2 per listener; M5's goal: 1-4)")
    h = s["fto_histogram"]
    if h["counts"]:
        peak = max(h["counts"])
        lines.append("FTO histogram (s):")
        for a, c in zip(h["bin_edges_s"], h["counts"]):
            lines.append(f"  {a:+.1f} {'#' * int(round(40 * c / peak))} {c}")
    return "\n".join(lines)
