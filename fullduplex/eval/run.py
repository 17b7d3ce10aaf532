"""`fullduplex eval`: run every system on the same items, analyse, score, report.

    OUT/suites/<suite>-seed<k>/...             the items (built once, reused)
    OUT/runs/<system>/<item>/output.wav        time-aligned output (+ output_text.json, timing.json)
    OUT/runs/<system>/<item>/record.json       episodes, words, metric values and the rules that fired
    OUT/runs/<system>~<k>/<item>/...           run k of the same items (--repeats; run 1 has no suffix)
    OUT/results.json, OUT/report.md, OUT/report.html
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from fullduplex.data.format import write_json

from . import aggregate, metrics
from .analysis import SR, Analysis, analyze, merge, read16
from .driver import is_done, run_file, run_files
from .resolve import resolve_batched, resolve_system
from .suite import EvalItem, load_items, prepare

log = logging.getLogger(__name__)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "system"


def user_ipus(item: EvalItem, x16: np.ndarray) -> list:
    """The user's IPUs: from the item's word alignment when it has one, else from VAD."""
    if item.meta.get("user_words"):
        return merge([[w[1], w[2]] for w in item.meta["user_words"]], 0.2)
    from fullduplex.engines import vad

    return merge([s for s in vad.speech_segments(x16, SR) if s[1] - s[0] >= 0.12], 0.2)


def focus_windows(meta: dict, duration: float) -> list:
    """Where the lexical metrics read the whole transcript: S3 all of it (FDB's backchannel rule),
    S4-S7 10 s after the overlap (M11, M13), S10 the reply (speech rate), S1 10 s after the turn end
    when the question has a checkable answer (M20)."""
    sid = meta.get("scenario")
    if sid == "S3" or sid is None:
        return [[0.0, duration]]
    ov = meta.get("barge_in") or meta.get("overlap")
    if ov:
        return [[ov[1], ov[1] + metrics.RELEVANCE_WINDOW_S]]
    if sid == "S10":
        return [[meta["user_turn_end"] - metrics.PREMATURE_S, duration]]
    if sid == "S1" and meta.get("answer"):
        t = meta["user_turn_end"]
        return [[t - metrics.PREMATURE_S, min(duration, t + metrics.RELEVANCE_WINDOW_S)]]
    return []


def run_system(name: str, items: list[EvalItem], out: Path, progress: bool = True, sessions: int = 1,
               seed: int | None = None) -> dict[str, Path]:
    """Outputs of one system for every item (an item whose output was made from the same input is
    skipped, so an interrupted run resumes; another suite or seed in the same folder is rerun).

    ``sessions`` > 1 runs that many items at once as sessions of one batched model (model systems
    only; the others run one item at a time): the same outputs up to sampling, faster on many cores.
    ``seed`` seeds torch's random generator once the system is built: a model that samples from it
    (no ``seed`` of its own in its sampling settings) then gives each seed its own run."""
    from tqdm import tqdm

    todo = [it for it in items if not is_done(it.input, out / it.id)]
    if todo:
        batched = resolve_batched(name, min(sessions, len(todo)))
        system = resolve_system(name) if batched is None else None
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        with tqdm(total=len(todo), desc=f"run {name}", disable=not progress, unit="item") as bar:
            if batched is not None:
                for _ in run_files(batched, [it.input for it in todo], [out / it.id for it in todo]):
                    bar.update()
            else:
                for it in todo:
                    run_file(system, it.input, out / it.id)
                    bar.update()
    return {it.id: out / it.id for it in items}


def analyse_system(items: list[EvalItem], dirs: dict[str, Path], inputs: dict, progress: bool = True) -> dict:
    """Analysis of every output (cached in analysis.json next to it)."""
    from tqdm import tqdm

    res = {}
    for it in tqdm(items, desc="analyse", disable=not progress, unit="item"):
        d = dirs[it.id]
        cache = d / "analysis.json"
        if cache.exists() and cache.stat().st_mtime >= (d / "output.wav").stat().st_mtime:
            res[it.id] = Analysis.from_json(json.loads(cache.read_text()))
            continue
        text = json.loads((d / "output_text.json").read_text()) if (d / "output_text.json").exists() else None
        out16 = read16(d / "output.wav")
        x = inputs[it.id][0]
        n = len(x)
        out16 = np.pad(out16, (0, max(0, n - len(out16))))[:n]
        an = analyze(out16, x, text, focus=focus_windows(it.meta, n / SR))
        write_json(cache, an.to_json())
        res[it.id] = an
    return res


def score_system(items, dirs, analyses, inputs) -> tuple[dict, dict]:
    """Per-item metrics (written to record.json) and the system-level extras (S10, M15, M16, M19,
    M20.heard.chance)."""
    by_id = {it.id: it for it in items}
    per_item, invalid, said = {}, [], []
    for it in items:
        an = analyses[it.id]
        if an.invalid:
            invalid.append(it.id)
        twin = analyses.get(it.meta.get("clean_twin", ""))
        vals, dbg = metrics.item_metrics(it.meta, an, inputs[it.id][1], twin)
        write_json(dirs[it.id] / "record.json", {
            "item": it.id, "scenario": it.scenario, "invalid_echo": an.invalid, "echo": round(an.echo, 3),
            "metrics": vals, "debug": dbg, "user_ipus": inputs[it.id][1],
            "episodes": [[e.start, e.end, e.kind, e.rule, e.text] for e in an.episodes],
            "glitches": an.glitches, "hygiene": an.hygiene})
        if not an.invalid:
            per_item[it.id] = vals
            if vals.get("M20.heard") is not None:
                said.append((dbg["M20"]["text"], it.meta["text"], it.meta["reply"]))
    extra = {"M20.heard.chance": heard_by_chance(said)}
    # S10: pairs
    pairs: dict[str, dict] = {}
    for it in items:
        if it.scenario == "S10" and not analyses[it.id].invalid:
            f = metrics.reply_features(read16(dirs[it.id] / "output.wav"), analyses[it.id],
                                       it.meta["user_turn_end"])
            pairs.setdefault(it.meta["pair"], {})[it.meta["style"]] = (f, it.meta.get("pair_axis", "rate"))
    for pid, p in pairs.items():
        first = p.get("hurried") or p.get("loud")
        second = p.get("calm") or p.get("soft")
        if first and second:
            per_item[pid] = metrics.pair_metrics(first[0], second[0], first[1])
    # M15: conversation statistics over all items (system channel vs user channel)
    from fullduplex.data.stats import Events, conversation_events, summarize

    ev = None
    for it in items:
        if analyses[it.id].invalid:
            continue
        sys_ipus = np.array(analyses[it.id].ipus, np.float64).reshape(-1, 2)
        usr = np.array(inputs[it.id][1], np.float64).reshape(-1, 2)
        e = conversation_events([sys_ipus, usr], analyses[it.id].duration)
        ev = e if ev is None else ev + e
    if isinstance(ev, Events):
        st = summarize(ev)
        extra["M15"] = st["overlap_share"]
        extra["M15.stats"] = {k: st[k] for k in ("fto_median_s", "overlap_share", "ipus_per_min", "gaps_per_min",
                                                 "overlaps_per_min", "gap_median_s", "overlap_median_s")}
    extra["M16"] = intelligibility(items, analyses)
    rtf = [json.loads((dirs[i] / "timing.json").read_text()) for i in by_id if (dirs[i] / "timing.json").exists()]
    rtf = [r for r in rtf if r.get("sessions", 1) == 1]  # a step that served several sessions is not one's speed
    if rtf:
        extra["M19"] = float(np.median([r["step_ms_p50"] / 1e3 / r["frame_s"] for r in rtf]))
        extra["M19.p99"] = float(np.median([r["step_ms_p99"] / 1e3 / r["frame_s"] for r in rtf]))
    extra["invalid_items"] = invalid
    return per_item, extra


def heard_by_chance(said: list[tuple[str, str, str]]) -> float | None:
    """M20.heard's control: each answered question's text stream ``said`` as (text, question, reply)
    scored against the next item's question, so that the words a model says whatever it hears ("the
    word", "capital") show as the level its M20.heard has to rise above."""
    from .text import heard_share

    if len(said) < 2:
        return None
    shares = [heard_share(said[i][0], *said[(i + 1) % len(said)][1:]) for i in range(len(said))]
    shares = [x for x in shares if x is not None]
    return float(np.mean(shares)) if shares else None


def intelligibility(items, analyses, max_items: int = 4) -> float | None:
    """M16: WER(system text, ASR of its audio) / WER(same text via the reference TTS voice)."""
    pairs = [(analyses[it.id].system_text, " ".join(w[0] for w in analyses[it.id].words))
             for it in items if analyses[it.id].system_text.strip() and not analyses[it.id].invalid]
    if not pairs:
        return None
    import jiwer

    from fullduplex.engines import asr, tts

    from .text import tokens

    pairs = pairs[:max_items]
    refs = [" ".join(tokens(r)) for r, _ in pairs]
    hyps = [" ".join(tokens(h)) for _, h in pairs]
    wer_sys = jiwer.wer(refs, hyps)
    cal = []
    for r in refs:
        a, sr, _ = tts.synthesize(r, tts.DEFAULT_ASSISTANT)
        cal.append(" ".join(tokens(" ".join(w.word for w in asr.transcribe(a, sr)))))
    wer_ref = jiwer.wer(refs, cal)
    return float(wer_sys / max(wer_ref, 0.02))


def run_dir(out: Path, name: str, run: int) -> Path:
    """Where run ``run`` (0-based) of system ``name`` writes its items' outputs."""
    return out / "runs" / (_safe(name) if run == 0 else f"{_safe(name)}~{run + 1}")


def _mean_extra(extras: list[dict]) -> dict:
    """System-level values of several runs: numbers averaged over the runs that have them, the rest
    from the first run (M15.stats, invalid_items)."""
    out = dict(extras[0])
    for k in ("M15", "M16", "M19", "M19.p99", "M20.heard.chance"):
        vals = [e[k] for e in extras if e.get(k) is not None]
        if vals:
            out[k] = float(np.mean(vals))
    out["invalid_items"] = sorted({i for e in extras for i in e.get("invalid_items", [])})
    return out


def evaluate(systems: list[str], suite: str, out: str | Path, seed: int = 0, progress: bool = True,
             sessions: int = 1, items: str | None = None, repeats: int = 1) -> dict:
    """Run, analyse and score every system on the suite; write results.json and the reports.
    ``sessions``: items run at once by a model system (see ``run_system``); M19 is then not measured.
    ``items``: only these scenarios of a named suite, with these counts ("S1=12,S4=12").
    ``repeats``: run every item this many times per system (a sampling system answers differently
    each time); metrics pool the runs and their CIs resample items with all their runs."""
    from . import report

    if not systems:
        raise ValueError("give at least one --system")
    if sessions < 1:
        raise ValueError(f"--sessions must be at least 1, got {sessions}")
    if repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {repeats}")
    out = Path(out)
    root = prepare(suite, out / "suites", seed, items)
    items = load_items(root)
    inputs = {}
    for it in items:
        x = read16(it.input)
        inputs[it.id] = (x, user_ipus(it, x))
    results = {"suite": str(root), "items": len(items), "repeats": repeats, "systems": {}, "timing_s": {},
               "extra": {}}
    runs = {}
    for name in systems:
        t_run = t_score = 0.0
        scored = []
        for k in range(repeats):
            t0 = time.perf_counter()
            dirs = run_system(name, items, run_dir(out, name, k), progress, sessions, seed=k if k else None)
            t1 = time.perf_counter()
            analyses = analyse_system(items, dirs, inputs, progress)
            per_item, extra = score_system(items, dirs, analyses, inputs)
            t_run, t_score = t_run + t1 - t0, t_score + time.perf_counter() - t1
            scored.append((dirs, analyses, per_item, extra))
        if repeats == 1:
            pooled, extra = scored[0][2], scored[0][3]
        else:
            ids = {i for _, _, per_item, _ in scored for i in per_item}
            pooled = {i: [per_item[i] for _, _, per_item, _ in scored if i in per_item] for i in sorted(ids)}
            extra = _mean_extra([e for *_, e in scored])
        results["systems"][name] = aggregate.aggregate(pooled, extra)
        results["extra"][name] = {k: v for k, v in extra.items() if k not in ("M15", "M16", "M19")}
        results["timing_s"][name] = {"run": round(t_run, 1), "analyse_score": round(t_score, 1)}
        runs[name] = scored[0][:3]  # the reports' timelines show the first run
    write_json(out / "results.json", results)
    report.write_reports(results, items, runs, inputs, out)
    return results


def json_summary(results: dict) -> dict:
    """{"systems": {name: {metric: value}}} (the --json output)."""
    return {"systems": {name: {k: v["value"] for k, v in agg.items() if isinstance(v, dict) and "value" in v}
                        for name, agg in results["systems"].items()}}
