"""festival voices: audio plus word timings from festival's Word relation.

Several sentences of one voice are rendered in one festival process (its start-up and voice load
cost about half a second), each sentence to its own wav file.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from .base import Word, require_binary, run
from .text import words

INSTALL = "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", " ").replace('"', " ") + '"'


def synthesize_many(texts: list[str], voice: str, rate: float, pitch: float, base_f0: float):
    """Returns [(audio float32 [T], sample_rate, words or None)] for each text, in order."""
    exe = require_binary("festival", INSTALL)
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"({voice})", f"(Parameter.set 'Duration_Stretch {1.0 / rate:.3f})"]
        if "diphone" in voice:  # linear-regression F0 model: move its target mean
            lines.append(f"(set! int_lr_params (list (list 'target_f0_mean {base_f0 * pitch:.1f}) "
                         "(list 'target_f0_std 14) (list 'model_f0_mean 170) (list 'model_f0_std 34)))")
        for i, text in enumerate(texts):
            wav = os.path.join(tmp, f"{i}.wav")
            lines += [f"(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))",
                      f"(utt.save.wave utt {_scheme_string(wav)} 'riff)",
                      f'(format t "U\\t{i}\\n")',
                      "(mapcar (lambda (w) (format t \"W\\t%s\\t%f\\t%f\\n\" (item.name w) "
                      "(item.feat w \"word_start\") (item.feat w \"word_end\"))) (utt.relation.items utt 'Word))"]
        script = os.path.join(tmp, "run.scm")
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        out = run([exe, "-b", script], timeout=600)
        timings: list[list[tuple[str, float, float]]] = [[] for _ in texts]
        cur = -1
        for line in out.splitlines():
            parts = line.split("\t")
            if parts[0] == "U":
                cur = int(parts[1])
            elif parts[0] == "W" and cur >= 0 and len(parts) == 4:
                timings[cur].append((parts[1], float(parts[2]), float(parts[3])))
        results = []
        for i, text in enumerate(texts):
            x, sr = sf.read(os.path.join(tmp, f"{i}.wav"), dtype="float32")
            if x.ndim == 2:
                x = x.mean(axis=1)
            toks = words(text)
            ws = None
            if len(toks) == len(timings[i]):
                ws = [Word(t, round(s, 3), round(e, 3)) for t, (_, s, e) in zip(toks, timings[i])]
            results.append((x.astype(np.float32), int(sr), ws))
    return results
