"""Top-K search over a gallery of normalised embeddings by chunked matrix product.

Chunking bounds memory at [chunk, N] scores whatever the number of queries; faiss is not needed
at the benchmarks' sizes (tens of thousands of gallery images).
"""

from __future__ import annotations

import torch


def topk_search(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    chunk_size: int = 1024,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and scores of the `k` most similar gallery rows for each query (cosine on
    normalised inputs), best first.

    exclude: optional [Q] gallery index per query removed from its own ranking (-1 = none),
        as CIRR removes the reference image.
    Returns (scores [Q, k], indices [Q, k]).
    """
    if gallery.ndim != 2 or gallery.shape[0] == 0:
        raise ValueError(f"the gallery is empty (shape {tuple(gallery.shape)}); nothing to retrieve from")
    if queries.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"query shape {tuple(queries.shape)} does not match gallery shape {tuple(gallery.shape)}")
    available = gallery.shape[0] - (1 if exclude is not None else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} but the gallery has {available} rankable images; use k <= {available}")
    all_scores, all_idx = [], []
    for start in range(0, queries.shape[0], chunk_size):
        sims = queries[start : start + chunk_size] @ gallery.T  # [C, N]
        if exclude is not None:
            ex = exclude[start : start + chunk_size].to(sims.device)
            rows = torch.nonzero(ex >= 0).squeeze(1)
            sims[rows, ex[rows]] = float("-inf")
        scores, idx = sims.topk(k, dim=1)  # [C, k]
        all_scores.append(scores)
        all_idx.append(idx)
    if not all_idx:
        return queries.new_zeros(0, k), torch.zeros(0, k, dtype=torch.long)
    return torch.cat(all_scores), torch.cat(all_idx)
