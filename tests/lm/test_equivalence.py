"""Our LM against Kyutai's `moshi` package on the small random-weight fixture."""
import torch
from torch.nn import functional as F

from fullduplex.lm import LMGen


def _ce(logits, targets, mask):
    return F.cross_entropy(logits[mask], targets[mask])


def test_teacher_forced_logits_match_moshi(small, ours, reference):
    _, _, codes, _ = small
    with torch.no_grad():
        a, b = ours(codes), reference(codes)
    for name in ("mask", "text_mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.mask[0, 0, -1] and not a.mask[0, 1:, -1].any()  # only cb0 (delay 0) is valid at the last step
    assert not a.text_mask[0, 0, 20:].any()  # zero tokens (-1) get no loss
    targets = codes[:, 1:9]
    ce_a, ce_b = _ce(a.logits, targets, a.mask), _ce(b.logits, targets, b.mask)
    assert abs(ce_a - ce_b) / ce_b <= 1e-6
    tce_a, tce_b = _ce(a.text_logits, codes[:, :1], a.text_mask), _ce(b.text_logits, codes[:, :1], b.text_mask)
    assert abs(tce_a - tce_b) / tce_b <= 1e-6
    m = a.mask[..., None].expand_as(a.logits)
    assert torch.allclose(a.logits[m], b.logits[m], atol=1e-5, rtol=1e-5)


def _run(gen, user, steps, seed=None):
    outs = []
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad(), gen.streaming(user.shape[0]):
        for t in range(steps):
            out = gen.step(user[:, :, t:t + 1])
            outs.append(None if out is None else out.clone())
    return outs


def test_greedy_streaming_matches_moshi_frame_by_frame(small, ours, reference):
    from moshi.models import LMGen as RefGen

    _, _, _, user = small
    steps = user.shape[-1]  # 64 frames, past the attention context of 50
    mine = _run(LMGen(ours, use_sampling=False), user, steps)
    ref = _run(RefGen(reference, use_sampling=False), user, steps)
    assert mine[0] is None and ref[0] is None
    for t in range(1, steps):
        assert mine[t].shape == (1, 9, 1)
        assert torch.equal(mine[t], ref[t]), f"frame {t}: {mine[t].flatten().tolist()} != {ref[t].flatten().tolist()}"


def test_sampling_uses_the_same_draws_as_moshi(small, ours, reference):
    """With torch's global RNG seeded alike, sampled tokens equal moshi's (same draw order and method)."""
    from moshi.models import LMGen as RefGen

    _, _, _, user = small
    mine = _run(LMGen(ours), user, 30, seed=1234)
    ref = _run(RefGen(reference), user, 30, seed=1234)
    assert all(torch.equal(a, b) for a, b in zip(mine[1:], ref[1:]))


def test_seeded_sampling_is_reproducible(small, ours):
    _, _, _, user = small
    a = _run(LMGen(ours, seed=7, temp=1.0, temp_text=1.0), user, 20)
    b = _run(LMGen(ours, seed=7, temp=1.0, temp_text=1.0), user, 20)
    c = _run(LMGen(ours, seed=8, temp=1.0, temp_text=1.0), user, 20)
    assert all(torch.equal(x, y) for x, y in zip(a[1:], b[1:]))
    assert not all(torch.equal(x, y) for x, y in zip(a[1:], c[1:]))
