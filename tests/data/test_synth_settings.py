"""`data synth --timing/--weight`: what they change in the dialogues, and that a folder keeps one config."""

import json

import pytest

from fullduplex.cli import main
from fullduplex.data import content
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
