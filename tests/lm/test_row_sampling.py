"""Per-row sampling settings in one batch: greedy rows stay greedy, sampling rows sample, settings
are checked and last across resets."""
import math

import pytest
import torch

from fullduplex.lm import LMGen, sample_token
from fullduplex.lm.generate import _RowPlan, sample_rows, sampling_probs


def _users(seeds, steps, k=8, card=64):
    return torch.cat([torch.randint(0, card, (1, k, steps), generator=torch.Generator().manual_seed(s))
                      for s in seeds])


def _run(gen, user, rows=None, steps=None):
    """Outputs of every step (None while the delays fill); ``rows``: {row: settings} set after start."""
    outs = []
    with gen.streaming(user.shape[0]):
        for r, settings in (rows or {}).items():
            gen.set_row_sampling(r, **settings)
        for t in range(steps or user.shape[-1]):
            out = gen.step(user[:, :, t:t + 1])
            outs.append(None if out is None else out.clone())
    return outs


def test_greedy_rows_in_a_mixed_batch_match_an_all_greedy_batch(ours):
    steps = 32
    user = _users((11, 12, 13, 14, 15), steps)
    greedy = _run(LMGen(ours, use_sampling=False), user)
    mixed = _run(LMGen(ours, seed=5, temp=1.0, temp_text=1.0), user, rows={
        0: dict(temp=0.0, temp_text=0.0),          # temperature 0: greedy
        1: dict(top_k=1, top_k_text=1),            # top-k 1: greedy too
        3: dict(use_sampling=False),               # no sampling
        4: dict(temp=0.0, top_k_text=1),           # greedy audio and text by different settings
    })                                             # row 2 samples (temperature 1, default top-k)
    assert greedy[0] is None and mixed[0] is None
    for t in range(1, steps):
        for r in (0, 1, 3, 4):
            assert torch.equal(mixed[t][r], greedy[t][r]), (t, r)
    # the sampling row leaves the greedy path within 30 frames
    assert any(not torch.equal(mixed[t][2], greedy[t][2]) for t in range(1, 31))


def test_a_row_can_sample_one_stream_and_take_the_other_greedily(ours):
    user = _users((21, 22), 30)
    greedy = _run(LMGen(ours, use_sampling=False), user)
    out = _run(LMGen(ours, seed=9, temp=1.0, temp_text=1.0), user, rows={0: dict(temp_text=0.0),  # greedy text
                                                                        1: dict(temp=0.0)})       # greedy audio
    # the first text token only sees the inputs: greedy in row 0 (later the sampled audio feeds back)
    assert out[1][0, 0] == greedy[1][0, 0]
    assert any(not torch.equal(out[t][0, 1:], greedy[t][0, 1:]) for t in range(1, 30))
    assert any(out[t][1, 0] != greedy[t][1, 0] for t in range(1, 30))


def test_all_rows_alike_is_the_uniform_path_bit_for_bit(ours):
    """Settings changed and changed back draw exactly what an untouched generator draws."""
    user = _users((31, 32, 33), 20)
    a = _run(LMGen(ours, seed=3, temp=0.9, temp_text=0.6, top_k=20, top_k_text=7), user)
    gen = LMGen(ours, seed=3, temp=0.9, temp_text=0.6, top_k=20, top_k_text=7)
    outs = []
    with gen.streaming(3):
        gen.set_row_sampling(1, temp=0.0, top_k=3, use_sampling=False)
        assert not gen._audio_plan.uniform
        gen.set_row_sampling(1, temp=0.9, top_k=20, use_sampling=True)
        assert gen._audio_plan.uniform and gen._text_plan.uniform
        for t in range(20):
            out = gen.step(user[:, :, t:t + 1])
            outs.append(None if out is None else out.clone())
    assert all(torch.equal(x, y) for x, y in zip(a[1:], outs[1:]))


def test_uniform_plan_draws_as_sample_token():
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(0))
    plan = _RowPlan([(True, 0.8, 5)] * 3, "cpu")
    a = sample_rows(logits, plan, torch.Generator().manual_seed(1))
    b = sample_token(logits, True, 0.8, 5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize("temp, k", [(0.7, 5), (1.3, 0), (0.0, 3)])
def test_sampling_probs_is_the_distribution_sample_token_draws_from(temp, k):
    """What `eval-lm` scores the turn-taking with is what generation samples."""
    V, n = 30, 4000
    base = torch.randn(1, V, generator=torch.Generator().manual_seed(3)) * 2
    tokens = sample_token(base.repeat(n, 1), True, temp, k, torch.Generator().manual_seed(5))
    drawn = torch.bincount(tokens, minlength=V).float() / n
    p = sampling_probs(base, temp, k)[0]
    assert p.sum() == pytest.approx(1.0) and int((p > 0).sum()) == (1 if temp == 0 else k or V)
    assert (drawn[p == 0] == 0).all()
    assert (drawn - p).abs().max() < 4 * math.sqrt(0.25 / n)


@pytest.mark.parametrize("settings, mode", [
    ([(True, 0.5, 3), (True, 1.5, 0), (True, 0.0, 7), (True, 1.0, 1), (True, 0.7, 500)], "threshold"),
    ([(True, 0.5, 3), (True, 1.5, 12), (False, 0.8, 7), (True, 1.0, 1), (True, 0.7, 5)], "topk"),
    ([(True, 0.5, 0), (True, 1.5, 40), (True, 0.0, 7), (True, 1.0, 1), (True, 0.7, 30)], "all"),
])
def test_per_row_draws_follow_each_rows_distribution(settings, mode):
    """Many copies of five rows with different settings: each row's draws stay inside its top-k and
    follow softmax(logits / temp) renormalised over it."""
    V, n = 30, 1500
    base = torch.randn(len(settings), V, generator=torch.Generator().manual_seed(2)) * 2
    logits = base.repeat(n, 1)
    plan = _RowPlan(settings * n, "cpu")
    assert not plan.uniform
    tokens = sample_rows(logits, plan, torch.Generator().manual_seed(4)).view(n, len(settings))
    assert plan.mode == mode
    for r, (use, temp, k) in enumerate(settings):
        drawn = torch.bincount(tokens[:, r], minlength=V).float() / n
        if not use or temp == 0 or k == 1:
            assert (tokens[:, r] == base[r].argmax()).all(), r
            continue
        p = torch.softmax(base[r] / temp, dim=-1)
        if 0 < k < V:
            keep = torch.zeros(V, dtype=torch.bool)
            keep[p.topk(k).indices] = True
            assert (drawn[~keep] == 0).all(), r
            p = torch.where(keep, p, torch.zeros_like(p))
            p = p / p.sum()
        assert (drawn - p).abs().max() < 4 * math.sqrt(0.25 / n), (r, drawn, p)


def test_bad_settings_are_errors_and_change_nothing(ours):
    gen = LMGen(ours, temp=0.8)
    with pytest.raises(RuntimeError, match="streaming"):
        gen.set_row_sampling(0, temp=0.5)
    with gen.streaming(2):
        before = gen.row_sampling(1)
        for kwargs, match in [(dict(temp=-0.1), "temp must be"), (dict(temp=math.nan), "temp must be"),
                              (dict(temp_text=math.inf), "temp_text must be"), (dict(temp="0.5"), "temp must be"),
                              (dict(temp=True), "temp must be"), (dict(top_k=-1), "top_k must be"),
                              (dict(top_k=2.5), "top_k must be"), (dict(top_k_text="3"), "top_k_text must be"),
                              (dict(top_k=True), "top_k must be"), (dict(use_sampling="yes"), "use_sampling"),
                              (dict(temp=0.5, top_k=-3), "top_k must be"),
                              (dict(padding_bonus=math.nan), "padding_bonus must be"),
                              (dict(padding_bonus=-10.5), "padding_bonus must be"),
                              (dict(padding_bonus="1"), "padding_bonus must be")]:
            with pytest.raises(ValueError, match=match):
                gen.set_row_sampling(1, **kwargs)
            assert gen.row_sampling(1) == before
        for row in (-1, 2, "0", 1.0):
            with pytest.raises(ValueError, match="row must be"):
                gen.set_row_sampling(row, temp=0.5)
    with pytest.raises(ValueError, match="temp must be"):
        LMGen(ours, temp=-1.0)
    with pytest.raises(ValueError, match="top_k_text must be"):
        LMGen(ours, top_k_text=-2)
    with pytest.raises(ValueError, match="padding_bonus must be"):
        LMGen(ours, padding_bonus=math.inf)


def test_padding_bonus_moves_one_rows_text_between_words_and_pad(ours):
    """A bonus on the PAD logit, per row: +10 leaves a row's text all PAD, -10 never PAD, and the other
    rows of the batch keep what the generator-wide bonus gives them."""
    pad = ours.cfg.existing_text_padding_id
    steps = 24
    user = _users((51, 52, 53), steps)
    plain = _run(LMGen(ours, use_sampling=False), user)
    assert not any(int(plain[t][r, 0]) == pad for t in range(1, steps) for r in range(3))  # this model: words
    base = _run(LMGen(ours, use_sampling=False, padding_bonus=3.0), user)
    texts = [int(base[t][r, 0]) for t in range(1, steps) for r in range(3)]
    assert 0.25 < texts.count(pad) / len(texts) < 0.75  # a bonus of 3 tips some frames to PAD
    biased = _run(LMGen(ours, use_sampling=False, padding_bonus=3.0), user,
                  rows={0: dict(padding_bonus=10.0), 2: dict(padding_bonus=-10.0)})
    assert all(int(biased[t][0, 0]) == pad for t in range(1, steps))
    assert all(int(biased[t][2, 0]) != pad for t in range(1, steps))
    assert all(torch.equal(biased[t][1], base[t][1]) for t in range(1, steps))


def test_settings_survive_reset_and_start_restores_the_defaults(ours):
    gen = LMGen(ours, temp=0.8, temp_text=0.7, top_k=250, top_k_text=25)
    defaults = dict(use_sampling=True, temp=0.8, temp_text=0.7, top_k=250, top_k_text=25, padding_bonus=0.0,
                    onset_temp_text=None, onset_padding_bonus=None)
    user = _users((41, 42), 3)
    gen.start(2)
    assert gen.row_sampling(0) == gen.row_sampling(1) == defaults
    gen.set_row_sampling(1, temp=0.0, top_k_text=4, padding_bonus=-1.0)
    gen.set_row_sampling(1, temp_text=None)  # None leaves it as is
    changed = dict(defaults, temp=0.0, top_k_text=4, padding_bonus=-1.0)
    gen.step(user[:, :, :1])
    gen.reset(torch.tensor([False, True]))
    assert gen.row_sampling(1) == changed and gen.row_sampling(0) == defaults
    gen.reset()
    assert gen.row_sampling(1) == changed
    gen.start(2)
    assert gen.row_sampling(1) == defaults
    gen.stop()


def _texts(outs, row):
    """The text token of every frame (outs[t] holds the text sampled at step t - 1)."""
    return [int(o[row, 0]) for o in outs[1:]]


def test_onset_settings_apply_while_the_model_is_silent(ours):
    """Speaking is discouraged (+10 on PAD) and starting is forced (-10 while silent): the model says a
    word, stays PAD until it has been silent QUIET_FRAMES frames, says a word again; other rows and a
    reset row keep their own rhythm."""
    from fullduplex.lm.generate import QUIET_FRAMES

    pad, steps = ours.cfg.existing_text_padding_id, 3 * (QUIET_FRAMES + 1) + 2
    user = _users((61, 62), steps)
    base = _run(LMGen(ours, use_sampling=False, padding_bonus=10.0), user)
    assert all(t == pad for t in _texts(base, 0) + _texts(base, 1))  # +10: PAD throughout
    gen = LMGen(ours, use_sampling=False, padding_bonus=10.0, onset_padding_bonus=-10.0)
    outs = _run(gen, user, rows={1: dict(onset_padding_bonus=10.0)})
    words = [i for i, t in enumerate(_texts(outs, 0)) if t != pad]
    assert words == list(range(0, steps - 1, QUIET_FRAMES + 1))
    assert _texts(outs, 1) == _texts(base, 1)
    # a reset session starts silent: a word at once, then the same rhythm
    with gen.streaming(1):
        for t in range(5):
            gen.step(user[:1, :, t:t + 1])
        gen.reset()
        got = [gen.step(user[:1, :, t:t + 1]) for t in range(QUIET_FRAMES + 4)]
    texts = [int(o[0, 0]) for o in got[1:]]
    assert [i for i, t in enumerate(texts) if t != pad] == [0, QUIET_FRAMES + 1]


def test_onset_temperature_draws_the_first_word_coolly(ours):
    """At temp_text 1 the first text token (the model is silent) leaves the greedy choice for some
    seed; with onset_temp_text 0 it is the greedy token for every seed, and later frames still sample."""
    user = _users((71,), 12)
    greedy = _texts(_run(LMGen(ours, use_sampling=False), user), 0)
    hot = [_texts(_run(LMGen(ours, seed=s, temp_text=1.0, top_k_text=0), user), 0) for s in range(12)]
    assert any(h[0] != greedy[0] for h in hot)
    cool = [_texts(_run(LMGen(ours, seed=s, temp_text=1.0, top_k_text=0, onset_temp_text=0.0), user), 0)
            for s in range(12)]
    assert all(c[0] == greedy[0] for c in cool)
    assert any(c[1:] != greedy[1:] for c in cool)


def test_onset_settings_are_checked_and_reported(ours):
    gen = LMGen(ours, onset_temp_text=0.4)
    with gen.streaming(2):
        assert gen.row_sampling(0)["onset_temp_text"] == 0.4 and gen.row_sampling(0)["onset_padding_bonus"] is None
        gen.set_row_sampling(1, onset_padding_bonus=-1.0)
        assert gen.row_sampling(1)["onset_padding_bonus"] == -1.0
        for bad in (dict(onset_temp_text=-1.0), dict(onset_padding_bonus=11.0), dict(onset_temp_text=math.nan)):
            with pytest.raises(ValueError, match=next(iter(bad))):
                gen.set_row_sampling(0, **bad)
        assert gen.row_sampling(0)["onset_temp_text"] == 0.4
    with pytest.raises(ValueError, match="onset_padding_bonus"):
        LMGen(ours, onset_padding_bonus="a lot")


def test_while_silent_the_onset_settings_draw_as_the_same_general_settings_would(ours):
    """A silent model with onset_temp_text 0.5 and onset_padding_bonus b draws what a generator with
    temp_text 0.5 and padding_bonus b draws (the bonus is tempered with the onset temperature), seed by
    seed, while both stay silent."""
    pad, user = ours.cfg.existing_text_padding_id, _users((81,), 12)
    for bonus in (2.0, 4.0):
        for s in range(8):
            same = _texts(_run(LMGen(ours, seed=s, temp_text=0.5, top_k_text=0, padding_bonus=bonus), user), 0)
            onset = _texts(_run(LMGen(ours, seed=s, temp_text=1.0, top_k_text=0, padding_bonus=-3.0,
                                      onset_temp_text=0.5, onset_padding_bonus=bonus), user), 0)
            n = next((i for i, t in enumerate(same) if t != pad), len(same)) + 1  # up to the first word
            assert onset[:n] == same[:n], (bonus, s)
