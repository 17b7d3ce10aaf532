"""Split residual vector quantizer: 1 semantic codebook + N acoustic codebooks.

Both residual quantizers see the same latent (the acoustic RVQ does not quantize the semantic
one's residual); decoding sums their projected outputs. Codebooks are stored as Kyutai's EMA
buffers (``embedding_sum`` / ``cluster_usage``), so released weights load as they are.

Training (``forward_train``, used by ``Codec.forward`` in train mode): the centroids are not
learnt by gradient but follow the data by exponential moving averages of the vectors assigned to
them; an uninitialised codebook starts from k-means on its first batch; codes whose usage falls
below ``threshold_usage_ratio`` x the mean are replaced by random vectors of the batch (for the
next batch: a replacement never quantizes the vector it was drawn from); the
encoder gets its gradient through the straight-through estimator and a commitment loss. Under
``torch.distributed`` the statistics are summed over processes, so every process keeps the same
codebooks. Inference (``encode`` / ``decode``) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..nn import fast


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    if _distributed():
        torch.distributed.all_reduce(x)
    return x


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    """Rows of x [N, D] from every process, in rank order (the same global batch as one process)."""
    if not _distributed():
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(sizes, n)
    top = int(max(int(s) for s in sizes))
    padded = torch.zeros(top, x.shape[1], dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.zeros_like(padded) for _ in sizes]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([p[: int(s)] for p, s in zip(parts, sizes)])


def _sample_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """n rows of x drawn at random (with replacement when x has fewer rows), from torch's global RNG."""
    if x.shape[0] >= n:
        return x[torch.randperm(x.shape[0], device=x.device)[:n]]
    return x[torch.randint(0, x.shape[0], (n,), device=x.device)]


def kmeans(x: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means of x [N, D] -> (centroids [k, D], cluster sizes [k]); empty clusters keep their seed."""
    centroids = _sample_rows(x, k)
    counts = torch.zeros(k, device=x.device)
    for _ in range(iters):
        assign = torch.cdist(x[None], centroids[None])[0].argmin(-1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    return centroids, counts


@dataclass
class VQTraining:
    """Training-time behaviour of the codebooks (Kyutai's defaults)."""

    decay: float = 0.99                 # EMA decay of the centroid statistics
    kmeans_iters: int = 50              # k-means iterations on the first batch (0: random batch vectors)
    threshold_usage_ratio: float = 0.1  # a code used less than this x the mean usage is replaced
    replaced_usage_ratio: float = 1.0   # ... by a batch vector, with this x the mean usage


@dataclass
class QuantizedResult:
    """What the training forward returns: x [B, D, T] quantized (straight-through), codes [B, K, T],
    the commitment loss, the semantic part of the output (for distillation) and statistics."""

    x: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    semantic: torch.Tensor
    metrics: dict


class EuclideanCodebook(nn.Module):
    """``bins`` centroids of size ``dim``; centroids = embedding_sum / cluster_usage."""

    epsilon = 1e-5

    def __init__(self, dim: int, bins: int):
        super().__init__()
        self.register_buffer("_initialized", torch.zeros(1))
        self.register_buffer("cluster_usage", torch.ones(bins))
        self.register_buffer("embedding_sum", torch.zeros(bins, dim))
        self._cache: torch.Tensor | None = None
        self._padded_cache: tuple | None = None  # (centroids, [c, 1, |c|^2], its fast.pack)
        self.training_cfg = VQTraining()

    _OLD_NAMES = {"inited": "_initialized", "cluster_size": "cluster_usage",
                  "embed_avg": "embedding_sum", "embed_sum": "embedding_sum"}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for old, new in self._OLD_NAMES.items():
            if prefix + old in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        self._cache = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def embedding(self) -> torch.Tensor:
        """Centroids [bins, dim] (cached; call ``invalidate()`` after changing the buffers)."""
        if self._cache is None or self.training:
            emb = self.embedding_sum / self.cluster_usage.clamp(min=self.epsilon)[:, None]
            if self.training:
                return emb
            self._cache = emb
        return self._cache

    def invalidate(self) -> None:
        self._cache = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, dim] -> nearest centroid index [N].

        Squared distances as one product [-2x, |x|^2, 1] @ [c, 1, |c|^2]^T, the way ``torch.cdist``
        computes them for codebooks of more than 25 entries, with the codebook side kept from call to
        call in inference instead of rebuilt every frame, and read by the fast CPU kernels (the
        distances equal cdist's up to float rounding, so codes differ only on near-exact ties).
        """
        emb = self.embedding
        if self.training or emb.shape[0] <= 25 or x.dtype != emb.dtype:
            return torch.cdist(x[None], emb[None], p=2)[0].argmin(dim=-1)
        padded = self._padded_cache
        if padded is None or padded[0] is not emb:
            norms = emb.pow(2).sum(dim=-1, keepdim=True)
            side = torch.cat([emb, torch.ones_like(norms), norms], dim=-1)
            padded = (emb, side, fast.pack(side))
            self._padded_cache = padded
        with torch.no_grad():  # indices: nothing to differentiate
            x_norm = x.pow(2).sum(dim=-1, keepdim=True)
            x_pad = torch.cat([-2 * x, x_norm, torch.ones_like(x_norm)], dim=-1)
            if padded[2] is not None and fast.usable(padded[1]):  # the codebook read at speed
                dist = fast.gemm(x_pad, padded[2], None)
            else:
                dist = x_pad @ padded[1].T
            return dist.clamp_min_(0).argmin(dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [...] -> centroids [..., dim]."""
        return F.embedding(codes, self.embedding)

    # --- training ----------------------------------------------------------------------------
    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Centroids from k-means on x [N, dim] (gathered over processes).

        Each centroid's usage starts at its cluster size, so the usage statistics are on the scale of
        one batch from the start: clusters k-means left empty (always some when N < bins) count as
        dead and are replaced from the next batches."""
        data = _all_gather(x.float())
        cfg = self.training_cfg
        bins = self.cluster_usage.shape[0]
        if cfg.kmeans_iters > 0:
            centroids, counts = kmeans(data, bins, cfg.kmeans_iters)
        else:
            centroids = _sample_rows(data, bins)
            counts = torch.bincount(torch.cdist(data[None], centroids[None])[0].argmin(-1), minlength=bins)
        usage = counts.to(self.cluster_usage.dtype).clamp(min=self.epsilon)
        self.cluster_usage.copy_(usage)
        self.embedding_sum.copy_(centroids * usage[:, None])
        self._initialized.fill_(1.0)
        self._cache = None

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor) -> dict:
        """Move the centroid statistics toward the vectors x [N, dim] assigned to codes [N].
        Returns usage statistics."""
        cfg = self.training_cfg
        bins = self.cluster_usage.shape[0]
        counts = torch.bincount(codes, minlength=bins).to(self.cluster_usage.dtype)
        sums = torch.zeros_like(self.embedding_sum).index_add_(0, codes, x.to(self.embedding_sum.dtype))
        _all_reduce(counts)
        _all_reduce(sums)
        self.cluster_usage.mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
        self.embedding_sum.mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
        self._cache = None
        p = counts / counts.sum().clamp(min=1)
        perplexity = torch.exp(-(p * torch.log(p.clamp(min=1e-10))).sum())
        return {"perplexity": float(perplexity)}

    @torch.no_grad()
    def replace_dead_codes(self, x: torch.Tensor) -> int:
        """Codes used less than threshold x mean usage get a random batch vector; returns how many."""
        cfg = self.training_cfg
        mean_usage = self.cluster_usage.sum() / self.cluster_usage.shape[0]
        dead = self.cluster_usage < cfg.threshold_usage_ratio * mean_usage
        n = int(dead.sum())
        if n == 0:
            return 0
        new = _sample_rows(_all_gather(x.float()), n).to(self.embedding_sum.dtype)
        usage = cfg.replaced_usage_ratio * mean_usage
        self.cluster_usage[dead] = usage
        self.embedding_sum[dead] = new * usage
        self._cache = None
        return n

    def forward_train(self, x: torch.Tensor, update: bool = True, replace_dead: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """x [N, dim] -> (centroids [N, dim] (no gradient), codes [N], stats); updates the codebook.

        Dead codes are replaced (``replace_dead``) after the assignment and the EMA update, with
        vectors of this batch, so they serve the next one. A replacement never quantizes the batch
        it was drawn from: drawn before the assignment, it would quantize its own vector exactly, the
        next levels of the residual quantizer would train on a residual that inference never gives
        them, and they would collapse."""
        if update and not bool(self._initialized.item()):
            self.init_from(x.detach())
        emb = self.embedding_sum / self.cluster_usage.clamp(min=self.epsilon)[:, None]
        with torch.no_grad():
            codes = torch.cdist(x.detach().float()[None], emb[None].float())[0].argmin(-1)
        quantized = F.embedding(codes, emb).to(x.dtype)
        if not update:
            return quantized, codes, {}
        stats = self.ema_update(x.detach(), codes)
        replaced = 0
        if replace_dead and self.training_cfg.threshold_usage_ratio > 0:
            replaced = self.replace_dead_codes(x.detach())
        return quantized, codes, {**stats, "replaced": replaced}


class _CodebookHolder(nn.Module):
    """Kyutai key layout: ``vq.layers.{i}._codebook.*``."""

    def __init__(self, dim: int, bins: int):
        super().__init__()
        self._codebook = EuclideanCodebook(dim, bins)


class _Layers(nn.Module):
    def __init__(self, n: int, dim: int, bins: int):
        super().__init__()
        self.layers = nn.ModuleList([_CodebookHolder(dim, bins) for _ in range(n)])


class ResidualVectorQuantizer(nn.Module):
    """Projects [B, D, T] to the codebook space and quantizes it residually with ``n_q`` codebooks."""

    def __init__(self, dimension: int, codebook_dim: int, n_q: int, bins: int):
        super().__init__()
        self.max_n_q = n_q
        self.n_q = n_q
        self.input_proj = nn.Conv1d(dimension, codebook_dim, 1, bias=False)
        self.output_proj = nn.Conv1d(codebook_dim, dimension, 1, bias=False)
        self.vq = _Layers(n_q, codebook_dim, bins)

    def codebooks(self) -> list[EuclideanCodebook]:
        return [holder._codebook for holder in self.vq.layers]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D, T] -> codes [B, n_q, T] (int64)."""
        B, _, T = x.shape
        residual = fast.conv1d(self.input_proj, x).transpose(1, 2).reshape(B * T, -1)
        codes = []
        for cb in self.codebooks()[: self.n_q]:
            c = cb.encode(residual)
            residual = residual - cb.decode(c)
            codes.append(c)
        return torch.stack(codes, dim=1).view(B, T, -1).transpose(1, 2)

    @torch.no_grad()
    def level_profile(self, x: torch.Tensor) -> tuple[list[float], list[int]]:
        """For x [B, D, T]: (share of the projected input's energy left after each codebook, distinct
        codes each codebook uses). A level that leaves the share where the previous one left it, with
        few distinct codes, has collapsed and carries no information."""
        B, _, T = x.shape
        residual = self.input_proj(x).transpose(1, 2).reshape(B * T, -1).float()
        total = residual.pow(2).sum().clamp(min=1e-12)
        left, used = [], []
        for cb in self.codebooks()[: self.n_q]:
            c = cb.encode(residual)
            residual = residual - cb.decode(c)
            left.append(float(residual.pow(2).sum() / total))
            used.append(int(c.unique().numel()))
        return left, used

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> [B, D, T], summing the first K codebooks."""
        books = self.codebooks()
        q = books[0].decode(codes[:, 0])
        for k in range(1, codes.shape[1]):
            q = q + books[k].decode(codes[:, k])
        return fast.conv1d(self.output_proj, q.transpose(1, 2))

    def forward_train(self, x: torch.Tensor, n_q: int, update: bool = True, replace_dead: bool = False,
                      first_level: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """x [B, D, T] with the first n_q codebooks -> (quantized [B, D, T], codes [B, n_q, T],
        commitment loss, stats). The gradient reaches the input projection straight through."""
        B, _, T = x.shape
        z = self.input_proj(x).transpose(1, 2).reshape(B * T, -1)
        residual, total = z, torch.zeros_like(z)
        commitment = z.new_zeros(())
        codes, stats = [], {}
        for level, cb in enumerate(self.codebooks()[:n_q]):
            q, c, st = cb.forward_train(residual, update, replace_dead)
            commitment = commitment + F.mse_loss(residual, q.detach())
            residual = residual - q
            total = total + q
            codes.append(c)
            for k, v in st.items():
                stats[f"{k}/{first_level + level}"] = v
        quantized = z + (total - z).detach()  # straight-through estimator
        out = self.output_proj(quantized.view(B, T, -1).transpose(1, 2))
        codes_t = torch.stack(codes, 1).view(B, T, -1).transpose(1, 2) if codes else x.new_zeros(
            (B, 0, T), dtype=torch.long)
        return out, codes_t, commitment, stats


class SplitResidualVectorQuantizer(nn.Module):
    """``rvq_first`` (semantic, n_q_semantic codebooks) + ``rvq_rest`` (acoustic) on the same latent."""

    def __init__(self, dimension: int, codebook_dim: int, n_q: int, bins: int, n_q_semantic: int = 1):
        super().__init__()
        self.n_q_semantic = n_q_semantic
        self.total_codebooks = n_q
        self.bins = bins
        self.rvq_first = ResidualVectorQuantizer(dimension, codebook_dim, n_q_semantic, bins)
        self.rvq_rest = ResidualVectorQuantizer(dimension, codebook_dim, n_q - n_q_semantic, bins)
        self.n_q = n_q

    def set_num_codebooks(self, n: int) -> None:
        if not self.n_q_semantic <= n <= self.total_codebooks:
            raise ValueError(f"num_codebooks must be in [{self.n_q_semantic}, {self.total_codebooks}], got {n}")
        self.n_q = n
        self.rvq_rest.n_q = n - self.n_q_semantic

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D, T] -> codes [B, n_q, T]."""
        codes = self.rvq_first.encode(x)
        if self.n_q > self.n_q_semantic:
            codes = torch.cat([codes, self.rvq_rest.encode(x)], dim=1)
        return codes

    def forward_train(self, x: torch.Tensor, n_q: int | None = None, update: bool = True,
                      replace_dead: bool = False) -> QuantizedResult:
        """Training forward on x [B, D, T] with n_q codebooks (default: all in use).

        ``update=False`` keeps the codebooks as they are (e.g. validation in train mode);
        ``replace_dead`` also replaces the dead codes after the EMA update."""
        n_q = self.n_q if n_q is None else n_q
        if not self.n_q_semantic <= n_q <= self.total_codebooks:
            raise ValueError(f"n_q must be in [{self.n_q_semantic}, {self.total_codebooks}], got {n_q}")
        sem, codes, commit, metrics = self.rvq_first.forward_train(x, self.n_q_semantic, update, replace_dead)
        out = sem
        if n_q > self.n_q_semantic:
            rest, codes_r, commit_r, stats_r = self.rvq_rest.forward_train(x, n_q - self.n_q_semantic, update,
                                                                           replace_dead, self.n_q_semantic)
            out = out + rest
            codes = torch.cat([codes, codes_r], 1)
            commit = commit + commit_r
            metrics.update(stats_r)
        return QuantizedResult(out, codes, commit, sem, metrics)

    def level_profile(self, x: torch.Tensor) -> dict[str, list]:
        """Per codebook, semantic first: the share of its quantizer's projected input energy left
        after it ("residual_left", restarting at the acoustic quantizer) and the distinct codes it uses."""
        left, used = self.rvq_first.level_profile(x)
        if self.n_q > self.n_q_semantic:
            rest_left, rest_used = self.rvq_rest.level_profile(x)
            left, used = left + rest_left, used + rest_used
        return {"residual_left": [round(v, 4) for v in left], "codes_used": used}

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] (K <= total codebooks) -> latent [B, D, T]."""
        z = self.rvq_first.decode(codes[:, : self.n_q_semantic])
        if codes.shape[1] > self.n_q_semantic:
            z = z + self.rvq_rest.decode(codes[:, self.n_q_semantic:])
        return z
