"""The evaluation report: Markdown and one self-contained HTML page (plots as base64 PNG)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from . import plots
from .aggregate import METRICS
from .analysis import read16
from .published import HUMAN, PUBLISHED, SYSTEMS


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if v != 0 and abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"


def _cell(s: dict | None) -> str:
    if not s or s.get("value") is None:
        return "–"
    out = _fmt(s["value"])
    if s.get("ci"):
        out += f" [{_fmt(s['ci'][0])}, {_fmt(s['ci'][1])}]"
    if s.get("n") is not None:
        out += f" (n={s['n']} of {s['items']} items)" if s.get("items") else f" (n={s['n']})"
    return out


def metric_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    names = list(results["systems"])
    head = ["id", "metric", "scen."] + names + SYSTEMS + ["published as / human"]
    rows = []
    for m in METRICS:
        pub, note = PUBLISHED.get(m.id, ({}, ""))
        arrow = {"lower": " ↓", "higher": " ↑"}.get(m.better, "")
        note = "; ".join(x for x in (note, HUMAN.get(m.id, "")) if x)
        rows.append([m.id, m.name + (f" ({m.unit})" if m.unit else "") + arrow, m.scenario]
                    + [_cell(results["systems"][n].get(m.id)) for n in names]
                    + [_fmt(pub.get(s)) for s in SYSTEMS] + [note])
    return head, rows


def markdown(results: dict) -> str:
    head, rows = metric_rows(results)
    runs = results.get("repeats", 1)
    lines = [f"# fullduplex eval — {Path(results['suite']).name} ({results['items']} items"
             + (f", {runs} runs of each)" if runs > 1 else ")"), "",
             "Values: pooled value [95 % bootstrap CI] (n items" + (" x runs; the CI resamples items with "
                                                                     "all their runs" if runs > 1 else "")
             + "). Published columns are other benchmarks' "
             "numbers on their data (see the last column for what they measure); they are context, not "
             "like-for-like.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "## Per system", ""]
    for name, ex in results["extra"].items():
        agg = results["systems"][name]
        t = results["timing_s"][name]
        lines.append(f"- **{name}**: run {t['run']} s, analyse+score {t['analyse_score']} s; "
                     f"M13 labels {agg.get('M13.labels', {})}; echo-invalid items: "
                     f"{ex.get('invalid_items') or 'none'}; M19 p99 {_fmt(ex.get('M19.p99'))}; "
                     f"conversation stats {ex.get('M15.stats', {})}")
    lines += ["", "Per-item records (episodes, words, the rule that fired): `runs/<system>/<item>/record.json`."]
    return "\n".join(lines) + "\n"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def html_page(results: dict, figures: list[tuple[str, bytes]]) -> str:
    head, rows = metric_rows(results)
    n_sys = len(results["systems"])
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = ""
    for r in rows:
        body += "<tr>" + "".join(
            f'<td class="{"ours" if 3 <= i < 3 + n_sys else "pub" if i >= 3 + n_sys else ""}">{html.escape(c)}</td>'
            for i, c in enumerate(r)) + "</tr>"
    md_extra = markdown(results).split("## Per system", 1)[1]
    items = "".join(f"<li>{html.escape(x[2:])}</li>" for x in md_extra.splitlines() if x.startswith("- "))
    figs = "".join(f"<h3>{html.escape(t)}</h3>{_img(p, t)}" for t, p in figures)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>fullduplex eval</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1600px}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}} td.ours{{background:#eef5ff;font-weight:600}}
td.pub{{color:#555}} img{{max-width:100%}}</style></head><body>
<h1>fullduplex eval — {html.escape(Path(results['suite']).name)} ({results['items']} items)</h1>
<p>Our systems (blue) on the same items; published numbers (grey) are from other benchmarks' data and rules —
see the last column. Values: pooled value [95 % bootstrap CI] (n).</p>
<table><tr>{th}</tr>{body}</table><h2>Per system</h2><ul>{items}</ul><h2>Plots</h2>{figs}</body></html>"""


def figures(results, items, runs, inputs) -> list[tuple[str, bytes]]:
    fto = {n: [v["M2"] for v in r[2].values() if v.get("M2") is not None] for n, r in runs.items()}
    stop = {n: [v["M9"] for v in r[2].values() if v.get("M9") is not None] for n, r in runs.items()}
    out = [("Floor-transfer offset at turn ends (S1, signed; M2)",
            plots.histograms(fto, "FTO: reply onset - user turn end", "seconds", -1.5, 5.0, 0.1, (0.0, 0.2))),
           ("Stop latency after barge-in (S4; M9)",
            plots.histograms(stop, "stop latency: system stops - barge-in start", "seconds", 0, 6.0, 0.2))]
    chosen = []
    for sid in ("S1", "S2", "S4", "S3", "S6"):
        it = next((i for i in items if i.scenario == sid and not i.meta.get("clean")), None)
        if it:
            chosen.append(it)
    for it in chosen:
        outs = {n: (read16(r[0][it.id] / "output.wav"), r[1][it.id]) for n, r in runs.items()}
        out.append((f"Timeline {it.id}", plots.timeline(inputs[it.id][0], outs, dict(it.meta, id=it.id))))
    return out


def write_reports(results, items, runs, inputs, out: Path) -> None:
    (out / "report.md").write_text(markdown(results))
    (out / "report.html").write_text(html_page(results, figures(results, items, runs, inputs)))
