"""Per-item metric values M1-M14, M20 and the FDB-compatible variants (evaluation.md §9.3).

``item_metrics`` returns {metric_id: value} for one item, plus a ``debug`` dict saying which
episode and rule decided each value. Values are 0/1 for rates, seconds for latencies, and
``[numerator, denominator]`` for per-minute and share-of-events metrics (pooled over items).
Times are seconds in input.wav; windows ignore the leading silence [0, lead_s).
"""

from __future__ import annotations

import numpy as np

from . import text as T
from .analysis import Analysis, merge
from .rules import fdb_backchannel, fdb_latency, fdb_takeover

PREMATURE_S = 0.3       # M1/M3: a floor take up to 0.3 s before the turn end still counts as a reply
RESPONSE_WINDOW_S = 5.0
YIELD_WITHIN_S = 1.0    # M8 (LSLM criterion)
FALSE_YIELD_WITHIN_S = 1.5
FALSE_YIELD_SILENCE_S = 0.5
RELEVANCE_WINDOW_S = 10.0


def stop_time(an: Analysis, t: float, min_silence: float = 0.2) -> float | None:
    """When the system's speech running at ``t`` is followed by >= ``min_silence`` of silence
    (the clip end if never); None when it is not speaking at ``t``."""
    if not an.speaking_at(t):
        return None
    for s, e in merge(an.ipus, min_silence):
        if s - 0.1 <= t <= e + 0.1:
            return e
    return None


def speech_between(an: Analysis, a: float, b: float) -> float:
    """Seconds of the system's speech (its IPUs) inside [a, b]."""
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in an.ipus)


def _s1(m, an, out, dbg):
    t_ue, lead = m["user_turn_end"], m.get("lead_s", 0.0)
    fts = an.floor_takes(after=lead)
    hit = next((e for e in fts if t_ue - PREMATURE_S <= e.start <= t_ue + RESPONSE_WINDOW_S), None)
    early = [e for e in fts if e.start < t_ue - PREMATURE_S]
    # the reply: the first floor take still running near the turn end or starting after it, so that
    # talking over the end of the turn gives a negative offset (and M3 counts it premature)
    reply = next((e for e in fts if e.end >= t_ue - PREMATURE_S and e.start <= t_ue + RESPONSE_WINDOW_S), None)
    out["M1"] = int(hit is not None)
    out["M2"] = round(reply.start - t_ue, 3) if reply else None
    out["M3"] = int(bool(early))
    # how much the system says after the turn end: a reply that stops after a word is scored as a
    # backchannel (M1 0) like silence would be; its seconds of speech tell the two apart
    out["M1.speech_s"] = round(speech_between(an, t_ue, t_ue + RESPONSE_WINDOW_S), 3)
    to = fdb_takeover(an.words)
    out["FDB.turn_tor"] = to
    out["FDB.turn_latency"] = fdb_latency(an.words, t_ue) if to else None
    answer = m.get("answer")
    if answer:
        # M20: the checkable answer in what the system says within 10 s of the turn end, read from its
        # text stream (inner monologue; None for an item where it produced no text) and from ASR of its audio
        a, b = t_ue - PREMATURE_S, t_ue + RELEVANCE_WINDOW_S
        said = an.text_between(a, b)
        anywhere = an.text_between(0.0, an.duration + 1.0)
        out["M20"] = int(T.contains_answer(said, answer)) if anywhere else None
        spoken = " ".join(w[0] for w in an.words_between(a, b))
        out["M20.spoken"] = int(T.contains_answer(spoken, answer))
        # whether it heard the question, right answer or not: the question's words a right reply says
        # back ("capital", "France"), the share of them in the text stream
        if anywhere and m.get("text") and m.get("reply"):
            out["M20.heard"] = T.heard_share(said, m["text"], m["reply"])
        dbg["M20"] = {"answer": answer, "text": said, "asr": spoken}
    dbg["M1"] = {"episode": [hit.start, hit.end, hit.rule] if hit else None,
                 "reply": [reply.start, reply.end, reply.rule] if reply else None,
                 "premature": [[e.start, e.end, e.rule] for e in early]}


def _s2(m, an, out, dbg):
    p_s, p_e = m["pause"]
    hit = next((e for e in an.floor_takes(after=m.get("lead_s", 0.0)) if p_s <= e.start <= p_e + 0.3), None)
    out["M4"] = int(hit is not None)
    out["M4b"] = fdb_takeover(an.words)
    dbg["M4"] = [hit.start, hit.end, hit.rule] if hit else None


def _s3(m, an, out, dbg, user_ipus):
    if not user_ipus:
        return
    a, b = user_ipus[0][0], user_ipus[-1][1]
    bcs = [e for e in an.episodes if e.kind == "backchannel" and a <= e.start <= b + 0.8]
    out["M5"] = [len(bcs), (b - a) / 60.0]
    to, n_bc = fdb_backchannel(an.segments, an.words)
    out["M6"] = to
    out["FDB.bc_freq"] = [n_bc, an.duration]
    ends = [e for _, e in user_ipus]
    gaps = [(e1, s2) for (_, e1), (s2, _) in zip(user_ipus, user_ipus[1:]) if s2 - e1 >= 0.2]
    placed = [e for e in bcs if any(-0.5 <= e.start - x <= 0.8 for x in ends) or any(g0 <= e.start <= g1
                                                                                     for g0, g1 in gaps)]
    out["M7"] = [len(placed), len(bcs)] if bcs else None
    dbg["M5"] = [[e.start, e.end, e.rule, e.text] for e in bcs]


def _label(words_after: str, kw: list, clean_after: str | None) -> str:
    """M13: RESPOND (an overlap keyword), UNCERTAIN (repair phrase), RESUME (Jaccard >= 0.3 with the
    clean twin's continuation), else UNKNOWN."""
    got = T.content_words(words_after)
    if kw and got & set(kw):
        return "RESPOND"
    if T.has_repair(words_after):
        return "UNCERTAIN"
    if clean_after is not None and got and T.jaccard(got, T.content_words(clean_after)) >= 0.3:
        return "RESUME"
    return "UNKNOWN"


def _s4(m, an, out, dbg):
    b_s, b_e = m["barge_in"]
    kw = m.get("keywords") or T.keywords(m.get("overlap_text", ""))
    stop = stop_time(an, b_s)
    if stop is not None:
        out["M8"] = int(stop - b_s <= YIELD_WITHIN_S)
        out["M9"] = round(stop - b_s, 3)
    resp = next((e for e in an.floor_takes() if b_e < e.start <= b_e + RESPONSE_WINDOW_S), None)
    out["M10"] = int(resp is not None)
    out["M10.latency"] = round(resp.start - b_e, 3) if resp else None
    after = an.words_between(b_e, b_e + RELEVANCE_WINDOW_S)
    said = " ".join(w[0] for w in after)
    if resp is not None:
        hits = T.content_words(said) & set(kw)
        out["M11"] = int(bool(hits))
        out["M11.recall"] = len(hits) / len(kw) if kw else None
    label = _label(said, kw, None)
    out["M13"] = int(label == "RESPOND")
    out["M13.label"] = label
    post = [w for w in an.words if (w[1] + w[2]) / 2 >= b_e]
    to = fdb_takeover(post)
    out["FDB.intr_tor"] = to
    out["FDB.intr_latency"] = fdb_latency(post, b_e) if to else None
    dbg["M8"] = {"speaking_at_barge_in": stop is not None, "stop": stop,
                 "response": [resp.start, resp.end, resp.rule] if resp else None, "said_after": said}


def _s567(m, an, out, dbg, twin: Analysis | None):
    o_s, o_e = m["overlap"]
    stop = stop_time(an, o_s, FALSE_YIELD_SILENCE_S)
    twin_stop = stop_time(twin, o_s, FALSE_YIELD_SILENCE_S) if twin is not None else None
    if stop is not None and twin_stop is not None and twin_stop - o_s > FALSE_YIELD_WITHIN_S:
        out["M12"] = int(stop - o_s <= FALSE_YIELD_WITHIN_S)
    said = " ".join(w[0] for w in an.words_between(o_e, o_e + RELEVANCE_WINDOW_S))
    clean = (" ".join(w[0] for w in twin.words_between(o_e, o_e + RELEVANCE_WINDOW_S))
             if twin is not None else None)
    kw = m.get("keywords") or (T.keywords(m.get("overlap_text", "")) if m["scenario"] != "S5" else [])
    label = _label(said, kw, clean)
    if an.speaking_at(o_s) or said:
        out["M13"] = int(label == "RESUME")
    out["M13.label"] = label
    dbg["M12"] = {"stop": stop, "twin_stop": twin_stop, "said_after": said, "twin_said_after": clean}


def _s8(m, an, out, dbg):
    lead = max(m.get("lead_s", 0.0), 3.0)
    minutes = max(an.duration - lead, 1e-9) / 60
    out["M14"] = [len(an.floor_takes(after=lead)), minutes]
    speech = speech_between(an, lead, float("inf"))
    out["M14.speech_s_per_min"] = [speech, minutes]
    out["M14.greeting"] = int(any(s < lead for s, _ in an.ipus))


def item_metrics(meta: dict, an: Analysis, user_ipus: list, twin: Analysis | None = None) -> tuple[dict, dict]:
    """({metric: value}, debug) of one item; scenario-free metrics (M18) for every item."""
    out: dict = {"M18": int(an.hygiene["ok"])}
    dbg: dict = {}
    sid = meta.get("scenario")
    if sid == "S1":
        _s1(meta, an, out, dbg)
    elif sid == "S2":
        _s2(meta, an, out, dbg)
    elif sid == "S3":
        _s3(meta, an, out, dbg, user_ipus)
    elif sid == "S4":
        _s4(meta, an, out, dbg)
    elif sid in ("S5", "S6", "S7") and not meta.get("clean"):
        _s567(meta, an, out, dbg, twin)
    elif sid == "S8":
        _s8(meta, an, out, dbg)
    return out, dbg


def reply_features(x16: np.ndarray, an: Analysis, t_ue: float) -> dict | None:
    """Speech rate (words/s), loudness (dBFS) and median F0 (Hz) of the first reply after t_ue."""
    ep = next((e for e in an.floor_takes() if e.start >= t_ue - PREMATURE_S), None)
    if ep is None:
        return None
    seg = x16[int(ep.start * 16000):int(ep.end * 16000)].astype(np.float64)
    loud = float(10 * np.log10(np.mean(seg ** 2) + 1e-12))
    rate = len(ep.words) / ep.dur if ep.dur > 0 else None
    f0 = None
    try:
        import parselmouth

        p = parselmouth.Sound(seg, 16000).to_pitch()
        f = p.selected_array["frequency"]
        f0 = float(np.median(f[f > 0])) if (f > 0).any() else None
    except ImportError:
        pass
    return {"rate_wps": rate, "loudness_dbfs": loud, "f0_hz": f0, "episode": [ep.start, ep.end]}


def pair_metrics(a: dict | None, b: dict | None, axis: str) -> dict:
    """S10: does the reply to the hurried (loud) version differ from the reply to the calm (soft)
    one in the same direction? ``a`` is the hurried/loud item's reply features, ``b`` the other's."""
    if a is None or b is None:
        return {}
    out = {}

    def follow(key, name, min_delta):
        if a.get(key) is not None and b.get(key) is not None:
            out[f"S10.{name}_follow"] = int(a[key] - b[key] > min_delta)
            out[f"S10.{name}_delta"] = round(a[key] - b[key], 3)

    if axis == "rate":  # differences below these count as "did not follow" (measurement noise)
        follow("rate_wps", "rate", 0.05 * b["rate_wps"] if b.get("rate_wps") else 0.0)
        follow("f0_hz", "pitch", 0.03 * b["f0_hz"] if b.get("f0_hz") else 0.0)
    else:
        follow("loudness_dbfs", "loudness", 1.0)
    return out
