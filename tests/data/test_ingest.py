import json
import shutil

import numpy as np
import pytest

from fullduplex.audio import write
from fullduplex.data.format import read_manifest
from fullduplex.data.ingest import run_ingest

SR = 24000


def _speechlike(rng, seconds, sr=SR, on=(0.0, 1.0)):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.1 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 3 * t) > 0)
    x[: int(on[0] * len(t))] = 0
    x[int(on[1] * len(t)):] = 0
    return x.astype(np.float32)


@pytest.fixture()
def bad_dir(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    a, b = _speechlike(rng, 6, on=(0, 0.5)), _speechlike(rng, 6, on=(0.5, 1))
    write(src / "good.wav", np.stack([a, b]), SR)
    write(src / "mono.wav", a, SR)
    write(src / "rate16k.wav", np.stack([_speechlike(rng, 6, 16000, (0, .5)), _speechlike(rng, 6, 16000, (.5, 1))]),
          16000)
    clip = np.stack([a * 20, b])
    write(src / "clipped.wav", clip, SR)
    write(src / "silent.wav", np.stack([a, np.zeros_like(b)]), SR)
    write(src / "leak.wav", np.stack([a, b + 0.2 * a]), SR)
    write(src / "short.wav", np.stack([a[: SR], b[: SR]]), SR)
    (src / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    write(src / "pair.assistant.wav", a, SR)
    write(src / "pair.user.wav", b, SR)
    return src


def test_ingest_rejects_each_bad_recording_with_its_reason(bad_dir, tmp_path, monkeypatch):
    before = {p.name: p.read_bytes() for p in bad_dir.iterdir()}
    from fullduplex.data import ingest

    monkeypatch.setattr(ingest, "words_for_channel", lambda x, t: ([], "none"))  # noise has no words
    rep = run_ingest(str(bad_dir), str(tmp_path / "out"), vad="energy", progress=False)
    reasons = {r["name"]: r["reason"].split(":")[0] for r in rep["rejected"]}
    assert reasons == {"mono": "mono_only", "clipped": "clipping", "silent": "silent_channel",
                       "leak": "leakage", "short": "too_short", "corrupt": "unreadable"}
    assert sorted(a["name"] for a in rep["accepted"]) == ["good", "pair", "rate16k"]
    assert len(read_manifest(tmp_path / "out")) == 3
    assert {p.name: p.read_bytes() for p in bad_dir.iterdir()} == before  # input untouched
    # resume: a second run does nothing new
    rep2 = run_ingest(str(bad_dir), str(tmp_path / "out"), vad="energy", progress=False)
    assert rep2["summary"] == rep["summary"] and len(read_manifest(tmp_path / "out")) == 3


def test_synth_then_ingest_recovers_alignments(synth_dir, tmp_path):
    """Ingest a synthetic item as if it were real (stereo + per-channel transcripts)."""
    e = read_manifest(synth_dir)[0]
    src = tmp_path / "real"
    src.mkdir()
    shutil.copy(synth_dir / e["path"], src / "conv.wav")
    doc = json.loads((synth_dir / e["path"]).with_suffix(".json").read_text())
    for spk, name in (("SPEAKER_MAIN", "assistant"), ("SPEAKER_OTHER", "user")):
        (src / f"conv.{name}.txt").write_text(" ".join(w for w, _, s in doc["alignments"] if s == spk))
    rep = run_ingest(str(src), str(tmp_path / "out"), vad="silero", progress=False)
    assert rep["summary"]["accepted"] == 1, rep["rejected"]
    got = json.loads((tmp_path / "out" / rep["accepted"][0]["path"]).with_suffix(".json").read_text())
    assert set(got["word_timing"].values()) == {"pocketsphinx-align"}
    ref = {(w.lower(), spk): [] for w, _, spk in doc["alignments"]}
    for w, (s, _), spk in doc["alignments"]:
        ref[(w.lower(), spk)].append(s)
    errs = [min(abs(s - r) for r in ref[(w.lower(), spk)]) for w, (s, _), spk in got["alignments"]]
    assert len(errs) >= 0.9 * len(doc["alignments"])
    assert np.mean(np.array(errs) <= 0.1) >= 0.9
