"""Per-session sampling settings of the batched model system."""
import numpy as np
import pytest

from fullduplex.lm.generate import SAMPLING_KEYS
from fullduplex.systems.model import BatchedModelSystem

F = 1920


def _noise(n, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal((n, F))).astype(np.float32)


def test_set_sampling_per_row_and_reset_restores_the_defaults(tiny_parts):
    s = BatchedModelSystem(tiny_parts, 3, sampling={"seed": 4, "temp": 0.9})
    defaults = dict(temp=0.9, temp_text=0.7, top_k=250, top_k_text=25, use_sampling=True, padding_bonus=0.0,
                    onset_temp_text=None, onset_padding_bonus=None, seed=4)
    assert all(s.row_sampling(i) == defaults for i in range(3))
    assert s.effective_sampling({"temp_text": 0, "top_k": 5}) == dict(defaults, temp_text=0.0, top_k=5)
    applied = s.set_sampling(1, {"temp_text": 0, "top_k": 5, "temp": None, "padding_bonus": -2})
    assert applied == s.row_sampling(1) == dict(defaults, temp_text=0.0, top_k=5, padding_bonus=-2.0)
    assert s.row_sampling(0) == s.row_sampling(2) == defaults
    s.step(_noise(3))
    s.reset(0)  # another row's restart leaves row 1 alone
    assert s.row_sampling(1) == applied
    s.reset(1)  # a recycled row starts with the system's settings
    assert s.row_sampling(1) == defaults
    s.set_sampling(2, {"use_sampling": False})
    s.reset()
    assert all(s.row_sampling(i) == defaults for i in range(3))
    s.close()


def test_bad_sampling_overrides(tiny_parts):
    s = BatchedModelSystem(tiny_parts, 2, sampling={"seed": 1})
    before = s.row_sampling(0)
    with pytest.raises(ValueError, match="temperature") as e:
        s.set_sampling(0, {"temperature": 0.5})
    assert all(k in str(e.value) for k in SAMPLING_KEYS)  # names the known keys
    with pytest.raises(ValueError, match="temp must be"):
        s.set_sampling(0, {"temp": -1})
    with pytest.raises(ValueError, match="top_k_text must be"):
        s.set_sampling(0, {"top_k_text": 1.5})
    with pytest.raises(ValueError, match="padding_bonus must be"):
        s.set_sampling(0, {"padding_bonus": 20})
    with pytest.raises(ValueError, match="seed is set for the whole batch"):
        s.set_sampling(0, {"seed": 2})
    s.set_sampling(0, {"seed": 1})  # the batch's own seed is fine
    with pytest.raises(IndexError):
        s.set_sampling(2, {"temp": 0.5})
    assert s.row_sampling(0) == before
    assert s.sampling_limits() == {"top_k": tiny_parts.lm.cfg.card, "top_k_text": tiny_parts.lm.cfg.text_card}


def test_a_greedy_row_beside_sampling_rows_matches_an_all_greedy_system(tiny_parts):
    greedy = BatchedModelSystem(tiny_parts, 2, sampling={"use_sampling": False})
    mixed = BatchedModelSystem(tiny_parts, 2, sampling={"seed": 3, "temp": 1.0, "temp_text": 1.0})
    mixed.set_sampling(0, {"use_sampling": False})
    x = _noise(2 * 12, seed=5).reshape(12, 2, F)
    differs = False
    for t in range(12):
        a, b = greedy.step(x[t]), mixed.step(x[t])
        assert np.array_equal(a[0].audio, b[0].audio) and a[0].info["token"] == b[0].info["token"], t
        differs |= a[1].info["token"] != b[1].info["token"] or not np.array_equal(a[1].audio, b[1].audio)
    assert differs
