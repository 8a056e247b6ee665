"""The approximate index against exact search: equal when it scans every cell, close at the default."""

from __future__ import annotations

import numpy as np
import torch

from p2w_lib.retrieval.faiss_index import (
    IvfConfig,
    build_ivf,
    clustered_embeddings,
    index_path,
    load_or_build_ivf,
    search_ivf,
)
from p2w_lib.retrieval.topk import topk_search


def _data(n=6000, dim=32, seed=0):
    gallery = torch.from_numpy(clustered_embeddings(n, dim, n_clusters=60, spread=0.8, seed=seed))
    queries = torch.from_numpy(clustered_embeddings(200, dim, n_clusters=60, spread=0.8, seed=seed))  # same centres
    return gallery, queries


def _recall_at_10(approx_idx: torch.Tensor, exact_idx: torch.Tensor) -> float:
    return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_idx.tolist(), exact_idx.tolist())]))


def test_scanning_every_cell_is_exact_search():
    gallery, queries = _data()
    index = build_ivf(gallery, IvfConfig(nlist=40))
    exact_scores, exact_idx = topk_search(queries, gallery, k=10)
    scores, idx = search_ivf(index, queries, 10, nprobe=40)
    assert torch.allclose(scores, exact_scores, atol=1e-5)
    assert _recall_at_10(idx, exact_idx) >= 0.999  # ties may swap, scores may not


def test_default_probe_count_keeps_recall_and_fewer_probes_lose_some():
    gallery, queries = _data(seed=1)
    _, exact_idx = topk_search(queries, gallery, k=10)
    index = build_ivf(gallery, IvfConfig(nlist=80))
    full = _recall_at_10(search_ivf(index, queries, 10, nprobe=32)[1], exact_idx)
    one = _recall_at_10(search_ivf(index, queries, 10, nprobe=1)[1], exact_idx)
    assert full >= 0.95
    assert one < full  # the knob does something: one cell misses neighbours across cell borders


def test_small_gallery_gets_a_flat_exact_index():
    gallery, queries = _data(n=30)
    assert IvfConfig().cells(30) == 1
    scores, idx = search_ivf(build_ivf(gallery), queries, 5)
    exact_scores, _ = topk_search(queries, gallery, k=5)
    assert torch.allclose(scores, exact_scores, atol=1e-5)


def test_index_is_stored_beside_the_cache_and_reused(tmp_path):
    gallery, queries = _data(n=4000, seed=2)
    cfg = IvfConfig()
    first = load_or_build_ivf(gallery, tmp_path, "entry-a", cfg)
    path = index_path(tmp_path, "entry-a", cfg, len(gallery))
    assert path.is_file() and not list(tmp_path.glob(".*.tmp"))
    stamp = path.stat().st_mtime_ns
    again = load_or_build_ivf(gallery, tmp_path, "entry-a", cfg)
    assert path.stat().st_mtime_ns == stamp  # read, not rebuilt
    assert torch.equal(search_ivf(first, queries, 10)[1], search_ivf(again, queries, 10)[1])
    assert index_path(tmp_path, "entry-b", cfg, len(gallery)) != path  # other embeddings, other index


def test_gallery_index_is_named_after_the_embedding_entry(clip, image_paths, tmp_path):
    """A changed gallery file gives a new embedding entry, hence a new index, without hashing twice."""
    from p2w_lib.clip.features import cache_key, embed_images

    first = embed_images(clip, image_paths, cache_dir=tmp_path)
    hit = embed_images(clip, image_paths, cache_dir=tmp_path)
    assert first.key == hit.key == cache_key(clip, image_paths) and hit.from_cache
    assert embed_images(clip, image_paths).key is None
