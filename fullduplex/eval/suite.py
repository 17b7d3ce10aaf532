"""Scenario suites on disk in Full-Duplex-Bench's layout, and reading any folder in that layout.

    SUITE/suite.json                 {"name", "seed", "items": [id, ...]}
    SUITE/<id>/input.wav             the user stream (16 kHz mono)
    SUITE/<id>/meta.json             scenario id and event times (see scenarios.py)

A folder without meta.json is read as Full-Duplex-Bench v1/v1.5 data: ``turn_taking.json`` -> S1,
``pause.json`` -> S2, ``interrupt.json`` -> S4, ``metadata.json`` -> S5/S6/S7 (by the folder names
user_backchannel / talking_to_other / background_speech, else S4), a folder name containing
"backchannel" without annotation -> S3; anything else is evaluated with the scenario-free metrics.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from fullduplex.audio import info, write
from fullduplex.data.format import write_json

from . import scenarios

log = logging.getLogger(__name__)


@dataclass
class SuiteConfig:
    name: str
    counts: dict[str, int]
    seed: int = 0
    lead_s: float = 3.0            # leading silence; a greeting in it is reported apart
    turn_tail_s: float = 5.0       # silence after a turn end (FDB: 5 s)
    barge_tail_s: float = 15.0     # silence after a barge-in (FDB: 15 s)
    overlap_tail_s: float = 10.0   # after a user backchannel / side talk / background speech
    barge_delay_s: tuple[float, float] = (5.0, 7.0)
    pause_s: tuple[float, float] = (0.4, 1.0)
    monologue_s: tuple[float, float] = (20.0, 80.0)
    monologue_pause_s: tuple[float, float] = (0.2, 0.8)
    noise_s: float = 60.0


SUITES = {
    "quick": SuiteConfig("quick", {"S1": 4, "S2": 4, "S3": 1, "S4": 3, "S5": 1, "S6": 1, "S7": 1, "S8": 2,
                                   "S10": 2},
                         lead_s=2.0, barge_tail_s=6.0, overlap_tail_s=5.0, barge_delay_s=(4.5, 5.5),
                         monologue_s=(18.0, 22.0), noise_s=20.0),
    "full": SuiteConfig("full", {"S1": 120, "S2": 150, "S3": 50, "S4": 200, "S5": 100, "S6": 100, "S7": 100,
                                 "S8": 20, "S10": 40}),
    "tiny": SuiteConfig("tiny", {"S1": 1, "S4": 1, "S8": 1}, lead_s=1.0, turn_tail_s=3.0, barge_tail_s=3.0,
                        barge_delay_s=(3.0, 3.5), noise_s=6.0),
}


@dataclass
class EvalItem:
    id: str
    dir: Path
    meta: dict = field(default_factory=dict)

    @property
    def input(self) -> Path:
        return self.dir / "input.wav"

    @property
    def scenario(self) -> str | None:
        return self.meta.get("scenario")


def get_config(name: str, seed: int = 0, items: str | None = None) -> SuiteConfig:
    """A named suite; ``items`` ("S1=12,S4=12") keeps only those scenarios, with those counts
    (item k of a scenario is the same in every suite of the same name and seed)."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)} (or pass a folder)")
    cfg = replace(SUITES[name], seed=seed)
    if items:
        cfg.counts = parse_items(items)
    return cfg


def parse_items(spec: str) -> dict[str, int]:
    """"S1=12,S4=12" -> {"S1": 12, "S4": 12}."""
    known = sorted(scenarios.BUILDERS, key=lambda s: int(s[1:]))
    counts = {}
    for part in spec.split(","):
        sid, sep, n = part.strip().partition("=")
        if not sep or not n.strip().isdigit() or int(n) < 1:
            raise ValueError(f"--items {spec!r}: write SCENARIO=COUNT[,...] with counts of at least 1, "
                             f"e.g. S1=12,S4=12")
        if sid.strip() not in known:
            raise ValueError(f"--items {spec!r}: unknown scenario {sid.strip()!r}; known: {', '.join(known)}")
        counts[sid.strip()] = int(n)
    return counts


def build_suite(cfg: SuiteConfig, out: str | Path, progress: bool = True) -> Path:
    """Write every item of the suite under ``out`` (items already there are kept)."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    jobs = [(sid, k) for sid, n in cfg.counts.items() for k in range(n)]
    for sid, k in tqdm(jobs, desc=f"suite {cfg.name}", disable=not progress, unit="item"):
        done = sorted(out.glob(f"{sid}_{k:03d}*/meta.json"))
        if done:
            ids += [p.parent.name for p in done]
            continue
        for it in scenarios.build(sid, k, cfg.seed, cfg):
            write(out / it.id / "input.wav", it.audio, scenarios.SR)
            write_json(out / it.id / "meta.json", dict(it.meta, id=it.id, suite=cfg.name))
            _write_fdb_annotation(out / it.id, it.meta)
            ids.append(it.id)
    write_json(out / "suite.json", {"name": cfg.name, "seed": cfg.seed, "items": ids,
                                    "config": {k: v for k, v in cfg.__dict__.items()}})
    return out


def _write_fdb_annotation(d: Path, m: dict) -> None:
    """The annotation file Full-Duplex-Bench's own scorers read, so its code can score our items."""
    sid = m["scenario"]
    if sid == "S1":
        write_json(d / "turn_taking.json", [{"timestamp": [m["user_turn_end"], m["duration"]]}])
    elif sid == "S2":
        write_json(d / "pause.json", [{"timestamp": m["pause"]}])
    elif sid == "S4":
        write_json(d / "interrupt.json", [{"timestamp": m["barge_in"], "context": m.get("context_text", ""),
                                           "interrupt": m.get("overlap_text", "")}])


def _fdb_meta(d: Path) -> dict:
    """Meta of a Full-Duplex-Bench item folder (no meta.json)."""
    dur = info(d / "input.wav").duration
    m = {"duration": dur, "lead_s": 0.0, "source": "fdb"}
    names = "/".join(p.name.lower() for p in d.parents) + "/" + d.name.lower()

    def ts(name):
        return json.loads((d / name).read_text())[0]["timestamp"]

    if (d / "turn_taking.json").exists():
        m.update(scenario="S1", user_turn_end=float(ts("turn_taking.json")[0]))
    elif (d / "pause.json").exists():
        s, e = ts("pause.json")
        m.update(scenario="S2", pause=[float(s), float(e)])
    elif (d / "interrupt.json").exists():
        doc = json.loads((d / "interrupt.json").read_text())[0]
        m.update(scenario="S4", barge_in=[float(x) for x in doc["timestamp"]],
                 overlap_text=doc.get("interrupt", ""))
    elif (d / "metadata.json").exists():
        doc = json.loads((d / "metadata.json").read_text())
        sid = ("S5" if "user_backchannel" in names else "S6" if "talking_to_other" in names
               else "S7" if "background_speech" in names else "S4")
        key = "barge_in" if sid == "S4" else "overlap"
        m.update(scenario=sid, context_text=doc.get("context_text", ""),
                 overlap_text=doc.get("current_turn_text", ""), **{key: [float(x) for x in doc["timestamps"]]})
    elif "backchannel" in names:
        m.update(scenario="S3")
    return m


def load_items(root: str | Path) -> list[EvalItem]:
    """Every item folder (one with input.wav) under ``root``, sorted by id."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such suite folder")
    items = []
    for wav in sorted(root.rglob("input.wav")):
        d = wav.parent
        mp = d / "meta.json"
        meta = json.loads(mp.read_text()) if mp.exists() else _fdb_meta(d)
        iid = meta.get("id") or str(d.relative_to(root)).replace("/", "_")
        items.append(EvalItem(iid, d, meta))
    if not items:
        raise ValueError(f"{root}: no item folders (a folder with input.wav) found")
    return items


def prepare(suite: str, out: str | Path, seed: int = 0, items: str | None = None) -> Path:
    """A suite name is built under ``out`` (cached); a folder is used as it is (``items`` is then
    refused: a folder's items are what they are)."""
    p = Path(suite)
    if p.is_dir():
        if items:
            raise ValueError(f"--items chooses items of a named suite, not of the folder {suite}")
        return p
    cfg = get_config(suite, seed, items)
    tag = "".join(f"-{sid}x{n}" for sid, n in cfg.counts.items()) if items else ""
    d = Path(out) / f"{cfg.name}-seed{seed}{tag}"
    if (d / "suite.json").exists():
        return d
    log.info("building suite %s into %s", cfg.name, d)
    return build_suite(cfg, d)
