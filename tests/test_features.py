"""Image embedding cache: hits, invalidation, and bad files skipped, counted and reported."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from p2w_lib import embed_images
from p2w_lib.data.images import BadImagesError, ImageListDataset, load_rgb


def test_embeddings_are_unnormalised_clip_image_features(clip, image_paths):
    emb = embed_images(clip, image_paths[:5])
    direct = clip.encode_image(torch.stack([clip.preprocess(load_rgb(p)) for p in image_paths[:5]]))
    assert torch.allclose(emb.tensor(), direct, atol=1e-5)
    assert emb.valid.all() and emb.report.n_bad == 0


def test_cache_hit_returns_same_values(clip, image_paths, tmp_path):
    first = embed_images(clip, image_paths, cache_dir=tmp_path / "cache", batch_size=7)
    second = embed_images(clip, image_paths, cache_dir=tmp_path / "cache")
    assert not first.from_cache and second.from_cache
    assert np.array_equal(np.asarray(first.features), np.asarray(second.features))


def test_cache_invalidated_by_changed_file_and_other_clip(clip, clip_seed1, image_paths, tmp_path):
    cache = tmp_path / "cache"
    embed_images(clip, image_paths, cache_dir=cache)
    assert not embed_images(clip_seed1, image_paths, cache_dir=cache).from_cache
    os.utime(image_paths[3], ns=(1, 1))  # keyed on content: a touched but unchanged file is still a hit
    assert embed_images(clip, image_paths, cache_dir=cache).from_cache
    Path(image_paths[3]).write_bytes(Path(image_paths[5]).read_bytes())  # new content: a miss
    assert not embed_images(clip, image_paths, cache_dir=cache).from_cache
    assert not embed_images(clip, image_paths[:-1], cache_dir=cache).from_cache


def test_bad_images_are_skipped_counted_and_reported(clip, image_paths, tmp_path, caplog):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(image_paths[0], "rb").read()[:60])
    paths = image_paths + [str(corrupt), str(truncated), str(tmp_path / "missing.png")]
    emb = embed_images(clip, paths, max_bad_fraction=0.2)
    assert emb.report.n_bad == 3 and emb.valid.sum() == len(image_paths)
    assert emb.report.bad[str(tmp_path / "missing.png")] == "missing"
    assert "unreadable" in emb.report.bad[str(corrupt)]
    assert not np.asarray(emb.features)[~emb.valid].any()
    assert "3 of 27 images skipped" in caplog.text


def test_too_many_bad_images_fail_with_examples(clip, image_paths, tmp_path):
    paths = image_paths[:4] + [str(tmp_path / f"gone_{i}.png") for i in range(2)]
    with pytest.raises(BadImagesError, match=r"2 of 6 images skipped .*gone_0.png: missing"):
        embed_images(clip, paths, max_bad_fraction=0.1)


def test_cached_bad_report_is_enforced_too(clip, image_paths, tmp_path):
    paths = image_paths[:4] + [str(tmp_path / "gone.png")]
    embed_images(clip, paths, cache_dir=tmp_path / "c", max_bad_fraction=0.5)
    with pytest.raises(BadImagesError):
        embed_images(clip, paths, cache_dir=tmp_path / "c", max_bad_fraction=0.1)


def test_empty_list_is_an_error(clip):
    with pytest.raises(ValueError, match="empty"):
        embed_images(clip, [])


def test_dataset_yields_error_instead_of_raising(clip, tmp_path):
    ds = ImageListDataset([str(tmp_path / "x.png")], clip.preprocess, clip.image_size)
    x, i, err = ds[0]
    assert x.shape == (3, clip.image_size, clip.image_size) and err == "missing"


def test_float16_cache_is_half_the_size_and_close(clip, image_paths, tmp_path):
    full = embed_images(clip, image_paths, cache_dir=tmp_path / "c")
    half = embed_images(clip, image_paths, cache_dir=tmp_path / "c", dtype="float16")
    assert not half.from_cache and half.features.dtype == np.float16  # its own cache entry, memory-mapped
    assert half.features.nbytes * 2 == full.features.nbytes
    assert torch.allclose(half.tensor(), full.tensor(), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="bfloat8"):
        embed_images(clip, image_paths, dtype="bfloat8")
