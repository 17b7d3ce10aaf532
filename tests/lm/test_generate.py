"""Batched streaming generation, per-session reset, bad input."""
import pytest
import torch

from fullduplex.lm import LMGen


def _user(seed, steps=40, k=8, card=64):
    return torch.randint(0, card, (1, k, steps), generator=torch.Generator().manual_seed(seed))


def _single(model, user):
    gen, outs = LMGen(model, use_sampling=False), []
    with gen.streaming(1):
        for t in range(user.shape[-1]):
            outs.append(gen.step(user[:, :, t:t + 1]))
    return outs


def test_batched_equals_single_runs(ours):
    users = [_user(s) for s in (1, 2, 3)]
    singles = [_single(ours, u) for u in users]
    batch = torch.cat(users)
    gen = LMGen(ours, use_sampling=False)
    with gen.streaming(3):
        for t in range(batch.shape[-1]):
            out = gen.step(batch[:, :, t:t + 1])
            if t == 0:
                assert out is None and all(s[0] is None for s in singles)
                continue
            for i in range(3):
                assert torch.equal(out[i:i + 1], singles[i][t]), (t, i)


def test_reset_restarts_one_session_only(ours):
    users = [_user(s, steps=50) for s in (4, 5, 6)]
    singles = [_single(ours, u) for u in users]
    batch = torch.cat(users)
    gen = LMGen(ours, use_sampling=False)
    cut = 12
    with gen.streaming(3):
        for t in range(cut):
            gen.step(batch[:, :, t:t + 1])
        gen.reset(torch.tensor([False, True, False]))
        for t in range(cut, 50):
            # session 1 starts over from its first frame; the others go on
            frame = batch[:, :, t:t + 1].clone()
            frame[1] = batch[1, :, t - cut:t - cut + 1]
            out = gen.step(frame)
            assert torch.equal(out[0:1], singles[0][t]) and torch.equal(out[2:3], singles[2][t])
            if t == cut:
                assert (out[1] == -2).all()  # its delays are filling again
            else:
                assert torch.equal(out[1:2], singles[1][t - cut]), t


def test_skip_fills_the_cache_as_real_steps_do(ours):
    """gen.skip(k) (benchmarks of long sessions) leaves the cache positions of k real steps, also past
    the model's 50-step context."""
    user = _user(7, steps=70)
    for k in (30, 70):
        gen = LMGen(ours, use_sampling=False)
        with gen.streaming(1):
            for t in range(k):
                gen.step(user[:, :, t:t + 1])
            real = (gen._state.slot_pos.clone(), gen._state.offsets.clone(), gen._state.filled)
        with gen.streaming(1):
            gen.skip(k)
            st = gen._state
            assert torch.equal(st.slot_pos, real[0]) and torch.equal(st.offsets, real[1]) and st.filled == real[2]
            assert gen.step(user[:, :, :1]).shape == (1, 9, 1)  # and steps on from there
    with pytest.raises(ValueError, match="steps"):
        with gen.streaming(1):
            gen.skip(-1)


def test_bad_user_codes(ours):
    gen = LMGen(ours, use_sampling=False)
    with pytest.raises(RuntimeError, match="streaming"):
        gen.step(torch.zeros(1, 8, 1, dtype=torch.long))
    with gen.streaming(2):
        with pytest.raises(ValueError, match=r"\[2, 8, 1\]"):
            gen.step(torch.zeros(2, 7, 1, dtype=torch.long))  # wrong number of streams
        with pytest.raises(ValueError, match=r"\[2, 8, 1\]"):
            gen.step(torch.zeros(1, 8, 1, dtype=torch.long))  # wrong number of sessions
        with pytest.raises(ValueError, match="outside"):
            gen.step(torch.full((2, 8, 1), 64, dtype=torch.long))  # card is 64
        with pytest.raises(ValueError, match="rows"):
            gen.reset(torch.tensor([True]))


def test_training_mode_is_refused(small):
    from fullduplex.lm import load_kyutai

    cfg, sd, _, _ = small
    with pytest.raises(ValueError, match="eval"):
        LMGen(load_kyutai(sd, cfg).train())
