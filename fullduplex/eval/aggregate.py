"""Pool per-item values into one number per metric, with a 95 % bootstrap CI (1,000 resamples of
items) and the usual summary (n, mean, median, p90). The metric table names each id's pooling.

With repeated runs (``eval --repeats``) an item has one value per run: the values of all runs are
pooled, and the bootstrap resamples items with all their runs, so the CI covers both the items
drawn and the sampling of the system."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOT = 1000


@dataclass(frozen=True)
class MetricDef:
    id: str
    name: str
    scenario: str
    pool: str        # mean | median | ratio (sum of numerators / sum of denominators) | value (system-level)
    unit: str = ""
    better: str = ""  # "lower" | "higher" | "" (no direction)


METRICS = [
    MetricDef("M1", "turn response rate", "S1", "mean", "", "higher"),
    MetricDef("M1.speech_s", "reply speech in the 5 s after the turn end (median)", "S1", "median", "s", "higher"),
    MetricDef("M2", "turn latency (FTO of the reply, signed, median)", "S1", "median", "s", "lower"),
    MetricDef("M3", "premature-start rate", "S1", "mean", "", "lower"),
    MetricDef("M4", "pause takeover rate (windowed)", "S2", "mean", "", "lower"),
    MetricDef("M4b", "pause TOR (FDB, whole clip)", "S2", "mean", "", "lower"),
    MetricDef("M5", "backchannels per minute of user floor", "S3", "ratio", "/min", ""),
    MetricDef("M6", "backchannel-context takeover (FDB BC TOR)", "S3", "mean", "", "lower"),
    MetricDef("M7", "backchannel placement (share well placed)", "S3", "ratio", "", "higher"),
    MetricDef("M8", "yield rate (stops within 1 s)", "S4", "mean", "", "higher"),
    MetricDef("M9", "stop latency (median)", "S4", "median", "s", "lower"),
    MetricDef("M10", "post-interruption response rate", "S4", "mean", "", "higher"),
    MetricDef("M10.latency", "post-interruption response latency (median)", "S4", "median", "s", "lower"),
    MetricDef("M11", "interruption relevance (keyword hit)", "S4", "mean", "", "higher"),
    MetricDef("M12", "false-yield rate", "S5-S7", "mean", "", "lower"),
    MetricDef("M13", "expected reaction (S4 respond, S5-S7 resume)", "S4-S7", "mean", "", "higher"),
    MetricDef("M14", "spurious floor takes per minute", "S8", "ratio", "/min", "lower"),
    MetricDef("M14.speech_s_per_min", "spurious speech seconds per minute", "S8", "ratio", "s/min", "lower"),
    MetricDef("M15", "overlap share of speaker changes", "all", "value", "", ""),
    MetricDef("M16", "intelligibility: WER(text, ASR(audio)) / reference", "all", "value", "", "lower"),
    MetricDef("M17", "codec round trip (see `eval codec`)", "codec", "value", "", ""),
    MetricDef("M18", "signal hygiene pass rate", "all", "mean", "", "higher"),
    MetricDef("M19", "real-time factor (p50 step / frame)", "all", "value", "", "lower"),
    MetricDef("M20", "answer correct in the text stream (inner monologue)", "S1", "mean", "", "higher"),
    MetricDef("M20.spoken", "answer correct in the spoken reply (ASR)", "S1", "mean", "", "higher"),
    MetricDef("M20.heard", "the question's words said back in the text stream (share)", "S1", "mean", "", "higher"),
    MetricDef("M20.heard.chance", "the same, against another item's question (what M20.heard is without hearing)",
              "S1", "value", "", ""),
    MetricDef("S10.rate_follow", "reply rate follows hurried vs calm", "S10", "mean", "", "higher"),
    MetricDef("S10.pitch_follow", "reply pitch follows hurried vs calm", "S10", "mean", "", "higher"),
    MetricDef("S10.loudness_follow", "reply loudness follows loud vs soft", "S10", "mean", "", "higher"),
    MetricDef("FDB.turn_tor", "FDB smooth turn TOR", "S1", "mean", "", "higher"),
    MetricDef("FDB.turn_latency", "FDB turn latency (clipped >= 0, TO only, mean)", "S1", "mean", "s", "lower"),
    MetricDef("FDB.bc_freq", "FDB backchannel frequency", "S3", "ratio", "/s", "higher"),
    MetricDef("FDB.intr_tor", "FDB interruption TOR", "S4", "mean", "", "higher"),
    MetricDef("FDB.intr_latency", "FDB interruption latency (mean)", "S4", "mean", "s", "lower"),
]
BY_ID = {m.id: m for m in METRICS}


def _pool(vals: list, how: str) -> float | None:
    if not vals:
        return None
    if how == "ratio":
        num = sum(v[0] for v in vals)
        den = sum(v[1] for v in vals)
        return None if den <= 0 else float(num / den)
    x = np.asarray(vals, dtype=np.float64)
    return float(np.median(x)) if how == "median" else float(np.mean(x))


def summarize(mdef: MetricDef, groups: list[list], seed: int = 0) -> dict:
    """{value, ci: [lo, hi], n, ...} for one metric; ``groups`` holds each item's values, one per run
    (None dropped; a ratio metric's value is its [numerator, denominator])."""
    groups = [[x for x in g if x is not None] for g in groups]
    groups = [g for g in groups if g]
    vals = [x for g in groups for x in g]
    value = _pool(vals, mdef.pool)
    out = {"value": None if value is None else round(value, 4), "n": len(vals), "ci": None}
    if len(groups) != len(vals):
        out["items"] = len(groups)
    if value is None:
        return out
    if len(groups) >= 2:
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(N_BOOT):
            pick = [x for i in rng.integers(0, len(groups), len(groups)) for x in groups[i]]
            b = _pool(pick, mdef.pool)
            if b is not None:
                boots.append(b)
        if boots:
            out["ci"] = [round(float(np.percentile(boots, 2.5)), 4), round(float(np.percentile(boots, 97.5)), 4)]
    if mdef.pool in ("mean", "median") and mdef.unit == "s":
        x = np.asarray(vals, np.float64)
        out.update(mean=round(float(x.mean()), 4), median=round(float(np.median(x)), 4),
                   p90=round(float(np.percentile(x, 90)), 4), share_negative=round(float((x < 0).mean()), 4))
    return out


def aggregate(per_item: dict[str, dict | list[dict]], extra: dict | None = None) -> dict:
    """per_item: {item_id: {metric: value}}, or {item_id: [{metric: value} per run]} for repeated
    runs -> {metric: summary}. ``extra``: system-level values (M15, M16, M19, ...) given directly
    as {metric: value}."""
    runs = {k: v if isinstance(v, list) else [v] for k, v in per_item.items()}
    res = {}
    for m in METRICS:
        if m.pool == "value":
            v = (extra or {}).get(m.id)
            res[m.id] = {"value": None if v is None else round(float(v), 4), "n": None, "ci": None}
            continue
        res[m.id] = summarize(m, [[d.get(m.id) for d in ds] for ds in runs.values()])
    labels: dict = {}
    for d in (d for ds in runs.values() for d in ds):
        if "M13.label" in d:
            labels[d["M13.label"]] = labels.get(d["M13.label"], 0) + 1
    res["M13.labels"] = labels
    return res
