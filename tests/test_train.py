"""Mapper training: learns, logs, checkpoints atomically, and resumes to the same result."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from p2w_lib import MapperConfig, TrainConfig, load_mapper, train_mapper
from p2w_lib.data.images import load_rgb
from p2w_lib.training.checkpoint import CheckpointError
from p2w_lib.training.schedule import batch_indices, lr_at

SMALL = dict(batch_size=8, lr=1e-3, warmup_steps=2, epochs=4, checkpoint_every=3, seed=0, embed_batch_size=16)
MAPPER = MapperConfig(hidden_dim=32)


def read_log(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_training_reduces_the_loss_and_logs_every_step(clip, image_paths, tmp_path):
    cfg = TrainConfig(**{**SMALL, "epochs": 15, "lr": 3e-3})
    result = train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "run", cache_dir=tmp_path / "cache")
    rows = read_log(result.log_csv)
    assert [int(r["step"]) for r in rows] == list(range(1, result.steps + 1))
    first = sum(float(r["loss"]) for r in rows[:3]) / 3
    last = sum(float(r["loss"]) for r in rows[-3:]) / 3
    assert last < first * 0.8
    assert result.steps == 15 * (len(image_paths) // 8)


def test_resume_equals_uninterrupted_run(clip, image_paths, tmp_path):
    cfg = TrainConfig(**SMALL)
    straight = train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "a", cache_dir=tmp_path / "cache")
    part = train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "b", cache_dir=tmp_path / "cache", until_step=5)
    assert part.steps == 5
    resumed = train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "b", cache_dir=tmp_path / "cache")
    assert resumed.steps == straight.steps
    for (name, a), b in zip(straight.mapper.state_dict().items(), resumed.mapper.state_dict().values()):
        assert torch.equal(a, b), name
    assert read_log(straight.log_csv) == read_log(resumed.log_csv)


def test_resume_trims_log_rows_past_the_checkpoint(clip, image_paths, tmp_path):
    cfg = TrainConfig(**SMALL)
    run = tmp_path / "run"
    train_mapper(clip, image_paths, cfg, MAPPER, run, until_step=3)
    with open(run / "train_log.csv", "a") as fh:  # a crash after step 3's checkpoint logged steps 4-5
        fh.write("4,1,9.9,1e-3\n5,1,9.9,1e-3\n")
    train_mapper(clip, image_paths, cfg, MAPPER, run)
    steps = [int(r["step"]) for r in read_log(run / "train_log.csv")]
    assert steps == sorted(set(steps)) and "9.9" not in (run / "train_log.csv").read_text()


def test_resume_with_changed_settings_is_refused(clip, image_paths, tmp_path):
    train_mapper(clip, image_paths, TrainConfig(**SMALL), MAPPER, tmp_path / "run", until_step=2)
    with pytest.raises(CheckpointError, match=r"\['lr'\]"):
        train_mapper(clip, image_paths, TrainConfig(**{**SMALL, "lr": 5e-4}), MAPPER, tmp_path / "run")


def test_checkpoint_loads_as_mapper_for_same_clip(clip, image_paths, tmp_path):
    result = train_mapper(clip, image_paths, TrainConfig(**SMALL), MAPPER, tmp_path / "run")
    loaded = load_mapper(result.checkpoint, clip)
    x = torch.randn(4, clip.embed_dim)
    assert torch.equal(loaded(x), result.mapper(x))


def test_recompute_mode_trains_through_the_image_encoder(clip, image_paths, tmp_path):
    cfg = TrainConfig(**{**SMALL, "epochs": 1, "recompute_image_features": True})
    result = train_mapper(clip, image_paths, cfg, MAPPER, tmp_path / "run")
    assert result.steps == 3 and math.isfinite(result.last_loss)


def test_too_few_images_for_a_batch(clip, image_paths, tmp_path):
    with pytest.raises(ValueError, match="global batch of 64"):
        train_mapper(clip, image_paths, TrainConfig(**{**SMALL, "batch_size": 64}), MAPPER, tmp_path / "run")


def test_lr_schedule_warmup_then_cosine_to_zero():
    assert [lr_at(s, 1.0, 4, 12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(8, 1.0, 4, 12) == pytest.approx(0.5)
    assert lr_at(12, 1.0, 4, 12) == pytest.approx(0.0, abs=1e-12)


def test_each_epoch_visits_every_image_once():
    seen = torch.cat([batch_indices(s, 20, 5, seed=3) for s in range(4)])
    assert sorted(seen.tolist()) == list(range(20))
    assert not torch.equal(batch_indices(0, 20, 5, 3), batch_indices(4, 20, 5, 3))


def test_smoke_run_end_to_end():
    from p2w_lib.tools.smoke import run_smoke

    out = run_smoke(seed=0)
    assert out["train_steps"] == 24 and math.isfinite(out["last_loss"])
    assert set(out["methods"]) == {"image_only", "text_only", "image_text", "slerp", "pic2word"}
    assert all(set(m) == {"R@10"} and math.isfinite(m["R@10"]) for m in out["methods"].values())
    assert run_smoke(seed=0) == out  # the whole run is reproducible from its seed


def test_recompute_stream_follows_the_plan_with_worker_processes(clip, image_paths):
    """DataLoader workers decode ahead, yet each step gets exactly its planned images (crop scale 1
    on square images makes the augmentation deterministic, so both streams must agree)."""
    from p2w_lib.methods.pic2word.train import recomputed_feature_source

    plan = lambda step: batch_indices(step, len(image_paths), 8, seed=3)  # noqa: E731
    streams = {}
    for workers in (0, 2):
        cfg = TrainConfig(recompute_image_features=True, crop_scale=(1.0, 1.0), num_workers=workers)
        stream, n = recomputed_feature_source(clip, image_paths, cfg)
        streams[workers] = torch.stack(list(stream(1, 5, plan)))  # [4, 8, D]
    assert n == len(image_paths)
    assert torch.allclose(streams[0], streams[2], atol=1e-5)
    direct = clip.encode_image(torch.stack([clip.preprocess(load_rgb(image_paths[i])) for i in plan(2).tolist()]))
    assert torch.allclose(streams[0][1], direct, atol=1e-3)  # step 2 is the second batch of the stream
