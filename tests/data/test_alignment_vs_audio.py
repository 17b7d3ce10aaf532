import json

import numpy as np

from fullduplex.audio import read
from fullduplex.data.format import CHANNEL, read_manifest
from fullduplex.engines import align
from fullduplex.engines.text import normalize


def test_forced_alignment_finds_words_where_json_says(synth_dir):
    """Re-align every turn's known words in its channel; starts must agree within 100 ms."""
    errs = []
    for e in read_manifest(synth_dir):
        x, sr = read(synth_dir / e["path"])
        doc = json.loads((synth_dir / e["path"]).with_suffix(".json").read_text())
        for ev in doc["events"]:
            if ev["type"] != "turn" or ev.get("interrupted"):
                continue
            words = [(w, s, t) for w, (s, t), spk in doc["alignments"]
                     if spk == ev["speaker"] and ev["start"] - 0.01 <= s and t <= ev["end"] + 0.01]
            a = max(0.0, ev["start"] - 0.3)
            seg = x[CHANNEL[ev["speaker"]], int(a * sr):int((ev["end"] + 0.3) * sr)]
            got = align.align(seg, sr, " ".join(w for w, _, _ in words))
            ref = {}
            for w, s, _ in words:
                ref.setdefault(normalize(w), []).append(s)
            for g in got:
                cands = ref.get(normalize(g.word), [])
                errs.append(min(abs(g.start + a - s) for s in cands))
    errs = np.array(errs)
    assert len(errs) > 40
    assert np.median(errs) < 0.04
    assert np.mean(errs <= 0.1) >= 0.95, f"only {np.mean(errs <= 0.1):.2%} of words within 100 ms"
