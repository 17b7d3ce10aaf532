"""Training-time behaviour of the codebooks: EMA, k-means init, dead codes, straight-through."""

import torch

from fullduplex.codec import Codec, tiny_config
from fullduplex.codec.quantizer import EuclideanCodebook, SplitResidualVectorQuantizer


def test_kmeans_init_and_ema_moves_centroids_toward_data():
    torch.manual_seed(0)
    cb = EuclideanCodebook(dim=4, bins=8)
    cb.training_cfg.kmeans_iters = 5
    cb.training_cfg.decay = 0.8
    x = torch.randn(256, 4)
    cb.forward_train(x)
    assert bool(cb._initialized.item())
    # data that moved: centroids follow it, and the distance to it shrinks with every update
    target = x + 5.0
    dists = []
    for _ in range(30):
        q, codes, _ = cb.forward_train(target)
        dists.append(float((target - q).pow(2).sum(-1).mean()))
    assert dists[-1] < 0.5 * dists[0]
    used = torch.bincount(codes, minlength=8) > 0
    assert float((cb.embedding[used].mean(0) - target.mean(0)).norm()) < 1.5


def test_dead_codes_are_replaced_with_batch_vectors_for_the_next_batch():
    torch.manual_seed(0)
    cb = EuclideanCodebook(dim=2, bins=4)
    cb.training_cfg.kmeans_iters = 0
    x = torch.randn(64, 2)
    cb.forward_train(x)
    with torch.no_grad():  # code 3: far away and never used
        cb.embedding_sum[3] = torch.tensor([100.0, 100.0])
        cb.cluster_usage[3] = 1e-3
    q, codes, stats = cb.forward_train(x, replace_dead=True)
    assert stats["replaced"] >= 1
    # the batch was quantized by the codebook as it was: the replacement does not quantize itself
    assert not (codes == 3).any()
    assert float((x - q).pow(2).sum(-1).min()) > 0
    # code 3 is now a vector of that batch, and the next batch uses it
    assert float(torch.cdist(cb.embedding[3:4], x).min()) < 1e-5
    _, codes, _ = cb.forward_train(x + 0.01 * torch.randn_like(x))
    assert (codes == 3).any()


def test_a_training_step_quantizes_as_inference_does_before_its_replacements():
    """With more codes than vectors per batch, every level has dead codes at every step. The batch
    that supplies the replacements must still be quantized, at every level, by the codebooks as they
    were: otherwise each replacement quantizes its own vector exactly, the deep levels train on a
    residual of zero that inference never gives them, and they collapse."""
    torch.manual_seed(0)
    q = SplitResidualVectorQuantizer(8, 4, n_q=4, bins=64)
    for cb in q.rvq_first.codebooks() + q.rvq_rest.codebooks():
        cb.training_cfg.kmeans_iters = 5
        cb.training_cfg.decay = 0.5
    for _ in range(20):
        q.forward_train(torch.randn(2, 8, 16), replace_dead=True)  # 32 vectors for 64 codes
    x = torch.randn(2, 8, 16)
    q.eval()
    with torch.no_grad():
        infer = q.decode(q.encode(x))
    q.train()
    train = q.forward_train(x, replace_dead=True)
    assert sum(v for k, v in train.metrics.items() if k.startswith("replaced")) > 0
    assert torch.allclose(train.x, infer, atol=1e-5)


def test_straight_through_and_commitment_give_encoder_gradients():
    torch.manual_seed(0)
    q = SplitResidualVectorQuantizer(8, 4, n_q=3, bins=16)
    x = torch.randn(2, 8, 10, requires_grad=True)
    res = q.forward_train(x)
    assert res.codes.shape == (2, 3, 10)
    (res.x.pow(2).mean() + res.commitment).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert q.rvq_first.input_proj.weight.grad is not None


def test_inference_unchanged_and_train_codes_match_encode():
    torch.manual_seed(0)
    codec = Codec(tiny_config())
    wav = 0.1 * torch.randn(2, 1, 3840)
    codec.train()
    codec(wav)  # initialises and updates the codebooks
    codec.eval()
    with torch.no_grad():
        before = codec.encode(wav)
        z = codec.encode_latent(wav)
        codes_train = codec.quantizer.forward_train(z, update=False).codes
        codec.train()
        codec(wav, update_codebooks=False)  # train-mode forward that leaves the codebooks alone
        codec.eval()
        after = codec.encode(wav)
    assert torch.equal(before, after)
    assert torch.equal(codes_train, before)


def test_init_usage_on_batch_scale_so_unused_codes_are_dead_at_once():
    torch.manual_seed(0)
    cb = EuclideanCodebook(dim=2, bins=32)
    cb.training_cfg.kmeans_iters = 3
    x = torch.randn(8, 2)  # fewer vectors than codes
    cb.forward_train(x)
    assert abs(float(cb.cluster_usage.sum()) - 8.0) < 0.5
    _, _, stats = cb.forward_train(torch.randn(8, 2), replace_dead=True)
    assert stats["replaced"] >= 20


def test_level_profile_shows_each_codebook_at_work_and_a_collapsed_one():
    torch.manual_seed(0)
    q = SplitResidualVectorQuantizer(8, 4, n_q=4, bins=16)
    for cb in q.rvq_first.codebooks() + q.rvq_rest.codebooks():
        cb.training_cfg.kmeans_iters = 10
    x = torch.randn(4, 8, 64)
    q.forward_train(x)  # k-means initialises every level on its residual
    q.eval()
    prof = q.level_profile(x)
    left, used = prof["residual_left"], prof["codes_used"]
    assert len(left) == len(used) == 4
    assert left[0] < 1 and left[1] < 1 and left[3] < left[2] < left[1]  # the acoustic levels restart at 1
    assert all(1 < u <= 16 for u in used)
    # a level whose centroids all sit at the origin quantizes nothing: the share it leaves does not move
    dead = q.rvq_rest.codebooks()[1]
    dead.embedding_sum.zero_()
    dead.invalidate()
    prof = q.level_profile(x)
    assert prof["codes_used"][2] == 1 and abs(prof["residual_left"][2] - prof["residual_left"][1]) < 1e-6
