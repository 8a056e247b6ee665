"""K augmented views embedded once: reproducible crops, a pure per-step view choice, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from p2w_lib import MapperConfig, TrainConfig, train_mapper
from p2w_lib.clip.features import AugmentedView, embed_images
from p2w_lib.methods.pic2word.train import cached_feature_source, view_choice

SMALL = dict(
    batch_size=8,
    lr=1e-3,
    warmup_steps=2,
    epochs=3,
    checkpoint_every=3,
    seed=0,
    embed_batch_size=16,
    crop_scale=(0.3, 0.6),
)  # small crops, so views visibly differ on 40-px images
MAPPER = MapperConfig(hidden_dim=32)


def test_a_view_is_the_same_crop_on_every_run_and_in_any_order(clip, image_paths):
    view = AugmentedView(0, (0.3, 0.6), seed=0)
    first = embed_images(clip, image_paths, view=view).tensor()
    again = embed_images(clip, image_paths[::-1], view=view).tensor().flip(0)  # keyed by path, not position
    assert torch.equal(first, again)
    plain = embed_images(clip, image_paths).tensor()
    other = embed_images(clip, image_paths, view=AugmentedView(1, (0.3, 0.6), seed=0)).tensor()
    assert not torch.allclose(first, plain) and not torch.allclose(first, other)


def test_each_view_has_its_own_cache_entry(clip, image_paths, tmp_path):
    for i in range(3):
        embed_images(clip, image_paths, cache_dir=tmp_path, view=AugmentedView(i, (0.3, 0.6)))
    embed_images(clip, image_paths, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_view_choice_is_a_pure_function_of_seed_and_step():
    a = view_choice(5, 256, 4, seed=0)
    assert np.array_equal(a, view_choice(5, 256, 4, seed=0))
    assert set(a.tolist()) == {0, 1, 2, 3}
    assert not np.array_equal(a, view_choice(6, 256, 4, seed=0))


def test_stream_serves_each_sample_from_its_drawn_view(clip, image_paths, tmp_path):
    cfg = TrainConfig(**{**SMALL, "augment_views": 3})
    stream, n = cached_feature_source(clip, image_paths, cfg, tmp_path)
    views = [
        embed_images(clip, image_paths, view=AugmentedView(i, cfg.crop_scale, cfg.seed)).tensor() for i in range(3)
    ]
    plan = lambda step: torch.arange(8) + step  # noqa: E731
    for step, feats in zip(range(2), stream(0, 2, plan)):
        pick = view_choice(step, 8, 3, cfg.seed)
        expected = torch.stack([views[v][i] for v, i in zip(pick.tolist(), plan(step).tolist())])
        assert torch.equal(feats, expected)


def test_training_with_views_resumes_exactly_and_differs_from_no_augmentation(clip, image_paths, tmp_path):
    cfg = TrainConfig(**{**SMALL, "augment_views": 2})
    straight = train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "a", cache_dir=tmp_path / "cache")
    train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "b", cache_dir=tmp_path / "cache", until_step=4)
    resumed = train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "b", cache_dir=tmp_path / "cache")
    for p, q in zip(straight.mapper.parameters(), resumed.mapper.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    plain = train_mapper(clip, image_paths, TrainConfig(**SMALL), MAPPER, tmp_path / "c", cache_dir=tmp_path / "cache")
    assert not all(torch.allclose(p, q) for p, q in zip(straight.mapper.parameters(), plain.mapper.parameters()))


def test_views_and_recompute_together_are_refused(clip, image_paths, tmp_path):
    cfg = TrainConfig(**{**SMALL, "augment_views": 2, "recompute_image_features": True})
    with pytest.raises(ValueError, match="not both"):
        train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "run")
