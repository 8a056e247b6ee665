"""Approximate search for large photo libraries (faiss IVF), built once and stored on disk.

Exact search (`retrieval.topk_search`) stays the default everywhere, and every benchmark uses it:
an approximate index trades a little recall for speed, which only pays beyond about a million
images. The index is an inverted file over k-means cells of the normalised embeddings (inner
product = cosine); a query scans the `nprobe` nearest cells. `make bench` measures its recall@10
against exact search, its speed, build time and memory on a synthetic 1M-image gallery.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from p2w_lib.core.files import atomic_path


@dataclass(frozen=True)
class IvfConfig:
    """nlist: k-means cells (0 = about sqrt(N)); nprobe: cells scanned per query; train_per_cell:
    training vectors per cell (k-means on a sample, so building stays linear in N)."""

    nlist: int = 0
    nprobe: int = 32
    train_per_cell: int = 64
    seed: int = 0

    def cells(self, n: int) -> int:
        return self.nlist or max(1, min(n // 39, int(round(math.sqrt(n)))))  # faiss wants >= 39 points per cell

    def key(self, n: int) -> str:
        return f"ivf{self.cells(n)}-t{self.train_per_cell}-s{self.seed}"


def _float32(feats: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = feats.numpy() if isinstance(feats, torch.Tensor) else feats
    return np.ascontiguousarray(arr, dtype=np.float32)


def build_ivf(feats: torch.Tensor | np.ndarray, cfg: IvfConfig = IvfConfig()):
    """An IVF-Flat inner-product index over normalised embeddings [N, D]."""
    import faiss

    x = _float32(feats)  # [N, D]
    n, dim = x.shape
    cells = cfg.cells(n)
    if cells == 1:  # too few images for k-means cells: a flat (exact) index
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        return index
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(cfg.seed)
    sample = x[np.sort(rng.choice(n, size=min(n, cells * cfg.train_per_cell), replace=False))]
    index.cp.seed = cfg.seed  # k-means initialisation: the same index from the same embeddings
    index.train(sample)
    index.add(x)
    index.nprobe = cfg.nprobe
    return index


def clustered_embeddings(n: int, dim: int, n_clusters: int, spread: float, seed: int) -> np.ndarray:
    """Normalised synthetic embeddings [n, dim] around `n_clusters` random directions.

    Real image embeddings cluster (by subject, style); uniform random vectors do not, and no index
    beats exhaustive search on them, so benchmarks and tests use this mixture instead."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):  # chunks bound the temporaries at paper scale
        stop = min(n, start + 65536)
        x = centres[rng.integers(0, n_clusters, stop - start)]
        x += rng.standard_normal((stop - start, dim)).astype(np.float32) * (spread / math.sqrt(dim))
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def search_ivf(index, queries: torch.Tensor, k: int, nprobe: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [Q, k], indices [Q, k]) like `retrieval.topk_search`; -1 marks missing results."""
    if nprobe is not None and hasattr(index, "nprobe"):
        index.nprobe = nprobe
    scores, idx = index.search(_float32(queries), k)
    return torch.from_numpy(scores), torch.from_numpy(idx)


def index_path(cache_dir: str | Path, embeddings_key: str, cfg: IvfConfig, n: int) -> Path:
    """Where the index of an embedding cache entry lives: beside it, named after it and the settings."""
    name = hashlib.sha256(f"{embeddings_key}:{cfg.key(n)}".encode()).hexdigest()[:24]
    return Path(cache_dir) / f"{name}.faiss"


def load_or_build_ivf(
    feats: torch.Tensor, cache_dir: str | Path | None, embeddings_key: str, cfg: IvfConfig = IvfConfig()
):
    """The stored index for these embeddings, or a new one (written atomically when cache_dir is given)."""
    import faiss

    if cache_dir is None:
        return build_ivf(feats, cfg)
    path = index_path(cache_dir, embeddings_key, cfg, feats.shape[0])
    if path.is_file():
        index = faiss.read_index(str(path))
        if index.ntotal == feats.shape[0] and index.d == feats.shape[1]:
            if hasattr(index, "nprobe"):
                index.nprobe = cfg.nprobe
            return index
    index = build_ivf(feats, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        faiss.write_index(index, os.fspath(tmp))
    return index
