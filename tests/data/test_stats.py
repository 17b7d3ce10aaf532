import numpy as np
import pytest

from fullduplex.audio import write
from fullduplex.data import content
from fullduplex.data.format import append_manifest, write_item
from fullduplex.data.stats import Events, dataset_stats, format_table, long_turn_backchannels, summarize
from fullduplex.data.synth import SynthConfig, render_item

SR = 24000


def _speech(x, ch, s, e, rng):
    x[ch, int(s * SR):int(e * SR)] = 0.1 * rng.standard_normal(int(e * SR) - int(s * SR))


def test_stats_on_constructed_conversation(tmp_path):
    """Known answer: A speaks [0.5,2.5] and [3.0,4.5] (pause 0.5), B answers [4.8,7.0] (gap 0.3) with A
    backchanneling inside it [5.5,5.9], A takes over early [6.8,9.0] (overlap 0.2), B [9.6,10.6]."""
    rng = np.random.default_rng(0)
    x = np.zeros((2, 12 * SR), np.float32)
    for ch, s, e in [(0, 0.5, 2.5), (0, 3.0, 4.5), (1, 4.8, 7.0), (0, 5.5, 5.9), (0, 6.8, 9.0), (1, 9.6, 10.6)]:
        _speech(x, ch, s, e, rng)
    write(tmp_path / "a.wav", x, SR)
    (tmp_path / "a.json").write_text('{"alignments": []}')
    append_manifest(tmp_path, [{"path": "a.wav", "duration": 12.0}])
    s = dataset_stats(str(tmp_path))
    assert s["ipus_per_min"] == pytest.approx(6 / 0.2, abs=0.01)
    assert s["backchannels_per_min"] == pytest.approx(1 / 0.2, abs=0.01)
    assert s["pauses_per_min"] == pytest.approx(1 / 0.2, abs=0.01)
    assert s["pause_median_s"] == pytest.approx(0.5, abs=0.02)
    assert s["overlap_share"] == pytest.approx(1 / 3, abs=0.01)  # transfers: +0.3, -0.2, +0.6
    assert s["fto_median_s"] == pytest.approx(0.3, abs=0.02)
    assert s["gap_median_s"] == pytest.approx(0.45, abs=0.02)
    assert s["overlap_median_s"] == pytest.approx(0.2, abs=0.02)
    assert s["talk_share"]["user"] == pytest.approx(3.2 / 12, abs=0.01)


def test_stats_on_synthetic_data_are_humanlike(synth_dir):
    s = dataset_stats(str(synth_dir))
    assert 0.0 <= s["fto_median_s"] <= 0.4
    assert s["ipus_per_min"] > 5


def test_barge_in_stop_latency_is_measured_on_the_audio_of_scripted_barge_ins(tmp_path):
    """Synthesized barge-ins: the assistant's speech, as the VAD finds it, ends within 0.15 s of the
    scripted stop (not at its next turn); an item without events has no barge-ins."""
    cfg = SynthConfig.with_settings(["interruption_prob=1", "stop_delay_s=0.05,0.1"],
                                    [f"{f}=0" for f in content.FAMILIES if f != "story"])
    cfg.min_item_s = cfg.max_item_s = 25
    item = render_item(0, cfg)
    append_manifest(tmp_path, [write_item(tmp_path, "audio/000000.wav", item)])
    s = dataset_stats(str(tmp_path))
    scripted = [e["reaction_s"] for e in item.meta["events"] if e["type"] == "interruption"]
    assert scripted and s["barge_ins_per_min"] == pytest.approx(len(scripted) / (item.duration / 60), rel=0.01)
    assert s["barge_in_stop_scripted_median_s"] == pytest.approx(float(np.median(scripted)), abs=1e-3)
    assert abs(s["barge_in_stop_median_s"] - s["barge_in_stop_scripted_median_s"]) < 0.15
    assert "barge_in_stop_median_s" in format_table(s)
    (tmp_path / "audio" / "000000.json").write_text('{"alignments": []}')
    s = dataset_stats(str(tmp_path))
    assert s["barge_ins_per_min"] == 0 and s["barge_in_stop_median_s"] is None
    assert "barge_in" not in format_table(s)


def test_long_turn_backchannels_count_each_listener_in_the_others_monologues():
    """Backchannels scripted in a 12 s user monologue and a 9 s assistant story count per listener per
    minute of those turns; a short question's backchannel and a long turn without a pause do not."""
    def turn(spk, a, b):
        return {"type": "turn", "speaker": spk, "start": a, "end": b}

    def ev(kind, spk, a):
        return {"type": kind, "speaker": spk, "start": a, "end": a + 0.4}

    U, A = "SPEAKER_OTHER", "SPEAKER_MAIN"
    events = [turn(U, 0.0, 12.0), ev("pause", U, 3.0), ev("backchannel", A, 3.1), ev("pause", U, 7.0),
              ev("backchannel", A, 7.2), ev("pause", U, 10.0),
              turn(A, 12.3, 21.3), ev("pause", A, 15.0), ev("backchannel", U, 15.1),
              turn(U, 22.0, 25.0), ev("pause", U, 23.0), ev("backchannel", A, 23.1),  # a short turn
              turn(U, 26.0, 33.0)]  # long, but no pause: not a monologue with room for a backchannel
    rows = long_turn_backchannels(events)
    assert rows == [("assistant", 2, 12.0), ("user", 1, 9.0)]
    s = summarize(Events(1.0, [1.0], [0.5], [0.2], 0, [1.0, 1.0], 0.0, long_turn_bcs=rows))
    assert s["long_turn_backchannels_per_min"] == {"assistant": 10.0, "user": pytest.approx(6.67, abs=0.01)}
    assert "assistant 10.0, user 6.67" in format_table({**s, "items": 1, "vad": "energy"})
    none = summarize(Events(1.0, [1.0], [0.5], [0.2], 0, [1.0, 1.0], 0.0))
    assert none["long_turn_backchannels_per_min"] == {"assistant": None, "user": None}
    assert "long-turn" not in format_table({**none, "items": 1, "vad": "energy"})
