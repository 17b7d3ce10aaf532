import json

import numpy as np

from fullduplex.audio import info, read
from fullduplex.data.format import ASSISTANT, USER, read_manifest, validate
from fullduplex.data.synth import SynthConfig, render_item


def test_manifest_and_stereo_layout(synth_dir):
    entries = read_manifest(synth_dir)
    assert len(entries) == 2
    assert validate(synth_dir) == []
    for e in entries:
        i = info(synth_dir / e["path"])
        assert (i.channels, i.sample_rate) == (2, 24000)
        assert abs(i.duration - e["duration"]) < 0.01
        doc = json.loads((synth_dir / e["path"]).with_suffix(".json").read_text())
        x, sr = read(synth_dir / e["path"])
        assert {w[2] for w in doc["alignments"]} == {ASSISTANT, USER}
        # each speaker's words are loud on their own channel and (outside overlaps) silent on the other
        for want, spk in ((0, ASSISTANT), (1, USER)):
            own, other = [], []
            for w, (s, t), who in doc["alignments"]:
                if who != spk:
                    continue
                seg = x[:, int(s * sr):int(t * sr)]
                own.append(np.sqrt((seg[want] ** 2).mean()))
                other.append(np.sqrt((seg[1 - want] ** 2).mean()))
            assert np.median(own) > 0.01
            assert np.median(other) < 0.1 * np.median(own)


def test_json_has_events_voices_prosody(synth_dir):
    doc = json.loads((synth_dir / read_manifest(synth_dir)[0]["path"]).with_suffix(".json").read_text())
    assert {"turn"} <= {e["type"] for e in doc["events"]}
    assert doc["voices"][ASSISTANT] == "flite-slt" and doc["voices"][USER] != "flite-slt"
    assert doc["prosody"][USER]["label"] in ("neutral", "hurried", "calm")
    assert all(t["family"] for t in doc["tasks"])


def test_deterministic_per_seed():
    cfg = SynthConfig(min_item_s=8, max_item_s=8)
    a, b = render_item(3, cfg), render_item(3, cfg)
    assert np.array_equal(a.audio, b.audio) and a.alignments == b.alignments
    cfg2 = SynthConfig(min_item_s=8, max_item_s=8, seed=1)
    assert render_item(3, cfg2).alignments != a.alignments


def test_interruption_and_backchannel_events():
    """Across a few items with stories (the turns a user cuts into), the timing model produces
    backchannels and interruptions where the assistant stops within a few hundred ms."""
    cfg = SynthConfig.with_settings([], ["story=3"])
    cfg.min_item_s = cfg.max_item_s = 60
    kinds, reactions = set(), []
    for k in range(6):
        for ev in render_item(k, cfg).meta["events"]:
            kinds.add(ev["type"])
            if ev["type"] == "interruption":
                reactions.append(ev["reaction_s"])
        if {"backchannel", "interruption"} <= kinds:
            break
    assert {"backchannel", "interruption", "pause"} <= kinds and reactions
    assert all(0.1 <= r <= 0.45 for r in reactions)


def _assistant_backchannels_per_min(cfg, items):
    """The assistant's backchannels per minute of the user's monologues over ``items`` rendered items."""
    count, floor_s = 0, 0.0
    for k in range(items):
        events = render_item(k, cfg).meta["events"]
        for turn in (e for e in events if e["type"] == "turn" and e["family"] == "user_story"):
            floor_s += turn["end"] - turn["start"]
            count += sum(1 for b in events if b["type"] == "backchannel" and b["speaker"] == ASSISTANT
                         and turn["start"] <= b["start"] <= turn["end"])
    assert floor_s > 60
    return 60 * count / floor_s


def test_backchannel_rate_is_per_minute_of_the_speakers_floor():
    """The assistant backchannels at a rate set per minute of the user's speech, whatever the number
    of pauses: none at 0, a human rate by default, at nearly every pause when asked for 60 a minute."""
    def cfg(*timing):
        return SynthConfig.with_settings(timing=list(timing), weights=[
            f"{f}={1 if f == 'user_story' else 0}" for f in SynthConfig().weights])
    assert _assistant_backchannels_per_min(cfg("backchannel_per_min=0"), 3) == 0
    human = _assistant_backchannels_per_min(cfg(), 3)
    assert 1 <= human <= 4
    many = _assistant_backchannels_per_min(cfg("backchannel_per_min=60"), 3)
    assert many > 3 * human
