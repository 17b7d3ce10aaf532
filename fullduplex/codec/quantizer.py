"""Split residual vector quantizer: 1 semantic codebook + N acoustic codebooks.

Both residual quantizers see the same latent (the acoustic RVQ does not quantize the semantic
one's residual); decoding sums their projected outputs. Codebooks are stored as Kyutai's EMA
buffers (``embedding_sum`` / ``cluster_usage``), so released weights load as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class EuclideanCodebook(nn.Module):
    """``bins`` centroids of size ``dim``; centroids = embedding_sum / cluster_usage."""

    epsilon = 1e-5

    def __init__(self, dim: int, bins: int):
        super().__init__()
        self.register_buffer("_initialized", torch.zeros(1))
        self.register_buffer("cluster_usage", torch.ones(bins))
        self.register_buffer("embedding_sum", torch.zeros(bins, dim))
        self._cache: torch.Tensor | None = None

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
        """x [N, dim] -> nearest centroid index [N]."""
        return torch.cdist(x[None], self.embedding[None], p=2)[0].argmin(dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [...] -> centroids [..., dim]."""
        return F.embedding(codes, self.embedding)


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
        residual = self.input_proj(x).transpose(1, 2).reshape(B * T, -1)
        codes = []
        for cb in self.codebooks()[: self.n_q]:
            c = cb.encode(residual)
            residual = residual - cb.decode(c)
            codes.append(c)
        return torch.stack(codes, dim=1).view(B, T, -1).transpose(1, 2)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> [B, D, T], summing the first K codebooks."""
        books = self.codebooks()
        q = books[0].decode(codes[:, 0])
        for k in range(1, codes.shape[1]):
            q = q + books[k].decode(codes[:, k])
        return self.output_proj(q.transpose(1, 2))


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

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] (K <= total codebooks) -> latent [B, D, T]."""
        z = self.rvq_first.decode(codes[:, : self.n_q_semantic])
        if codes.shape[1] > self.n_q_semantic:
            z = z + self.rvq_rest.decode(codes[:, self.n_q_semantic:])
        return z
