import numpy as np
import pytest
from eval_signals import have_voices

from fullduplex.eval import effects, scenarios
from fullduplex.eval.suite import get_config


def test_scenario_items_are_deterministic_and_annotated():
    if not have_voices():
        pytest.skip("flite voices not installed")
    cfg = get_config("quick")
    a = scenarios.build("S2", 0, 0, cfg)[0]
    b = scenarios.build("S2", 0, 0, cfg)[0]
    assert np.array_equal(a.audio, b.audio)
    # (word times come from pocketsphinx alignment, which can differ by ~20 ms between calls)
    drop = ("user_words",)
    assert {k: v for k, v in a.meta.items() if k not in drop} == {k: v for k, v in b.meta.items() if k not in drop}
    p_s, p_e = a.meta["pause"]
    assert 0.4 <= p_e - p_s <= 1.0 and a.meta["user_turn_end"] > p_e
    seg = a.audio[int((p_s + 0.05) * 16000):int((p_e - 0.05) * 16000)]
    assert np.abs(seg).max() < 1e-3  # the pause is silent
    twin = scenarios.build("S6", 0, 0, cfg)
    assert [t.id for t in twin] == ["S6_000", "S6_000_clean"] and twin[0].meta["clean_twin"] == "S6_000_clean"
    o_s, o_e = twin[0].meta["overlap"]
    assert np.abs(twin[1].audio[int(o_s * 16000):int(o_e * 16000)]).max() < 1e-3  # clean twin: no overlap


def test_effect_levels():
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    assert effects.rms_db(effects.side_talk(x)) < effects.rms_db(x) - 5
    assert effects.rms_db(effects.background_speech(x)) < effects.rms_db(x) - 14
    bab = effects.babble([x, x[::-1]], 32000, -30.0, np.random.default_rng(0))
    assert effects.rms_db(bab) == pytest.approx(-30.0, abs=0.1)


def test_items_choose_scenarios_and_counts_of_a_named_suite(tmp_path):
    from fullduplex.audio import read
    from fullduplex.eval.suite import load_items, prepare

    assert get_config("quick", 0, "S4=12, S1=8").counts == {"S4": 12, "S1": 8}
    more = prepare("tiny", tmp_path, 0, "S8=2")
    assert more.name == "tiny-seed0-S8x2" and [it.id for it in load_items(more)] == ["S8_000", "S8_001"]
    plain = prepare("tiny", tmp_path, 0)  # its S8 item is the first of the larger suite
    (same,) = [it for it in load_items(plain) if it.scenario == "S8"]
    assert np.array_equal(read(same.input)[0], read(more / "S8_000" / "input.wav")[0])
    for bad, message in [("S9=2", "unknown scenario"), ("S1=0", "at least 1"), ("S1", "SCENARIO=COUNT")]:
        with pytest.raises(ValueError, match=message):
            get_config("quick", 0, bad)
    with pytest.raises(ValueError, match="named suite"):
        prepare(str(more), tmp_path, 0, "S8=1")
