"""`data synth --timing/--weight`: what they change in the dialogues, and that a folder keeps one config."""

import json

import numpy as np
import pytest

from fullduplex.cli import main
from fullduplex.data import content
from fullduplex.data.format import SAMPLE_RATE, USER
from fullduplex.data.synth import CONFIG_NAME, SynthConfig, render_item, run_synth


def test_settings_change_the_families_drawn_and_how_fast_the_assistant_stops():
    others = [f"{f}=0" for f in content.FAMILIES if f != "story"]
    cfg = SynthConfig.with_settings(["interruption_prob=1", "stop_delay_s=0.05,0.1"], ["story=1", *others])
    cfg.min_item_s = cfg.max_item_s = 25
    meta = render_item(0, cfg).meta
    asked = [t["family"] for t in meta["tasks"] if not t.get("after_interruption")]
    assert "story" in asked and set(asked) <= {"story", "smalltalk"}  # a greeting may open a dialogue
    stories = [e for e in meta["events"] if e["type"] == "turn" and e["family"] == "story"
               and e["speaker"] == "SPEAKER_MAIN"]
    assert stories and all(e.get("interrupted") for e in stories)  # every story is cut into
    reactions = [e["reaction_s"] for e in meta["events"] if e["type"] == "interruption"]
    assert len(reactions) == len(stories) and all(0.05 <= r <= 0.1 + 1e-3 for r in reactions)
    # the defaults are left as they are
    assert SynthConfig().timing.stop_delay_s == (0.15, 0.4) and SynthConfig().weights == content.WEIGHTS


@pytest.mark.parametrize("timing,weight,message", [
    (["stop_delay_s=0.3,0.1"], [], "LOW,HIGH"),
    (["stop_delay=0.1"], [], "unknown key"),
    (["interruption_prob=often"], [], "not a number"),
    ([], ["poetry=2"], "unknown family"),
    ([], [f"{f}=0" for f in content.FAMILIES], "positive weight"),
])
def test_bad_settings_are_refused_with_what_to_write(timing, weight, message, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        SynthConfig.with_settings(timing, weight)
    argv = ["data", "synth", "--out", str(tmp_path / "d"), "--hours", "0.01"]
    argv += [x for t in timing for x in ("--timing", t)] + [x for w in weight for x in ("--weight", w)]
    assert main(argv) == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_a_folder_is_only_resumed_with_the_config_it_was_made_with(tmp_path):
    out = tmp_path / "ds"
    cfg = SynthConfig(min_item_s=6, max_item_s=6)
    first = run_synth(str(out), hours=6 / 3600, seed=2, cfg=cfg, progress=False)
    manifest = (out / "manifest.jsonl").read_text()
    assert json.loads((out / CONFIG_NAME).read_text())["seed"] == 2
    other = SynthConfig.with_settings(["stop_delay_s=0.1,0.2"])
    other.min_item_s = other.max_item_s = 6
    with pytest.raises(ValueError, match="timing"):
        run_synth(str(out), hours=12 / 3600, seed=2, cfg=other, progress=False)
    with pytest.raises(ValueError, match="seed"):
        run_synth(str(out), hours=12 / 3600, seed=3, cfg=SynthConfig(min_item_s=6, max_item_s=6), progress=False)
    assert (out / "manifest.jsonl").read_text() == manifest  # nothing was added or lost
    again = run_synth(str(out), hours=12 / 3600, seed=2, cfg=SynthConfig(min_item_s=6, max_item_s=6), progress=False)
    assert again["items"] == first["items"] + 1


def test_voices_can_be_chosen_and_a_neural_voice_speaks_the_user(tmp_path, capsys):
    from fullduplex.engines import tts

    if not tts.is_installed(tts.VOICES["piper-joe"]):
        pytest.skip("piper-joe not installed")
    cfg = SynthConfig.with_settings(assistant_voice="flite-rms", user_voices=["piper-joe"])
    cfg.min_item_s = cfg.max_item_s = 12
    item = render_item(0, cfg)
    assert item.meta["voices"] == {"SPEAKER_MAIN": "flite-rms", "SPEAKER_OTHER": "piper-joe"}
    user_words = [w for w in item.alignments if w[2] == "SPEAKER_OTHER"]
    assert user_words and all(0 <= s < e <= item.duration for _, (s, e), _ in user_words)
    with pytest.raises(ValueError, match="unknown voice 'nobody'"):
        SynthConfig.with_settings(user_voices=["nobody"])
    with pytest.raises(ValueError, match="other than the assistant's"):
        SynthConfig.with_settings(assistant_voice="flite-rms", user_voices=["flite-rms"])
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--hours", "0.01", "--user-voice", "nobody"]) == 2
    assert "known voices" in capsys.readouterr().err


def test_a_hesitation_is_a_silent_pause_mid_question_that_the_assistant_waits_out():
    """With every question led in, each question of the user is a lead-in, 0.4-1.4 s of silence from
    both speakers, then the rest of the sentence; the reply starts after it. At 0, none is."""
    only_sums = [f"{f}={1 if f == 'arithmetic' else 0}" for f in content.FAMILIES]
    cfg = SynthConfig.with_settings(["hesitation_prob=1"], only_sums)
    cfg.min_item_s = cfg.max_item_s = 20
    item = render_item(0, cfg)
    events, sr = item.meta["events"], SAMPLE_RATE
    pauses = [e for e in events if e["type"] == "pause" and e.get("hesitation")]
    asks = [e for e in events if e["type"] == "turn" and e["speaker"] == USER and e["family"] == "arithmetic"]
    replies = [t["reply_start"] for t in item.meta["tasks"] if t["family"] == "arithmetic"]
    assert len(asks) >= 2 and len(pauses) == len(asks) == len(replies)
    for p, ask, reply in zip(pauses, asks, replies):
        assert ask["start"] < p["start"] and p["end"] < ask["end"] < reply + 0.6
        assert 0.4 <= p["end"] - p["start"] <= 1.4 and reply > p["end"]
        end = max(ask["text"].find(f) + len(f) for f in content.LEAD_IN_FRAMES if f in ask["text"])
        assert ask["text"][end + 1].islower()  # one sentence: the question goes on after the lead-in
        quiet = item.audio[:, int((p["start"] + 0.03) * sr):int((p["end"] - 0.03) * sr)]
        assert np.abs(quiet).max() < 1e-3
        said = [w for w, (s, _), spk in item.alignments if spk == USER and ask["start"] <= s <= ask["end"]]
        assert len(said) == len(ask["text"].split())
    cfg0 = SynthConfig.with_settings(["hesitation_prob=0"], only_sums)
    cfg0.min_item_s = cfg0.max_item_s = 20
    assert not any(e.get("hesitation") for e in render_item(0, cfg0).meta["events"])


def test_lead_ins_are_many_phrasings_and_none_is_the_suites():
    from fullduplex.eval.scenarios import PAUSE_OPENERS

    rng = np.random.default_rng(0)
    drawn = {content.lead_in(rng) for _ in range(2000)}
    assert len(drawn) > 300 and all(d[0].isupper() for d in drawn)
    assert not drawn & set(PAUSE_OPENERS)
    assert not any(d.endswith(("ask you", "tell me", "it is", "you know")) for d in drawn)


def test_a_folder_made_before_hesitations_resumes_only_without_them(tmp_path):
    out = tmp_path / "ds"
    small = dict(min_item_s=6, max_item_s=6)
    run_synth(str(out), hours=6 / 3600, seed=2, cfg=SynthConfig(**small), progress=False)
    stored = json.loads((out / CONFIG_NAME).read_text())
    for k in ("hesitation_prob", "hesitation_s"):
        del stored["timing"][k]
    (out / CONFIG_NAME).write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="timing.hesitation_prob"):
        run_synth(str(out), hours=12 / 3600, seed=2, cfg=SynthConfig(**small), progress=False)
    old = SynthConfig.with_settings(["hesitation_prob=0"])
    old.min_item_s = old.max_item_s = 6
    assert run_synth(str(out), hours=12 / 3600, seed=2, cfg=old, progress=False)["items"] == 2
