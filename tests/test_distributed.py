"""Two processes (gloo, CPU) train exactly like one process on the same global batch."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from p2w_lib import MapperConfig, TrainConfig, train_mapper
from tests.conftest import tiny_clip, write_images

# dropout off: two processes cannot draw the same dropout masks as one process does
MAPPER = MapperConfig(hidden_dim=32, dropout=0.0)


pytestmark = pytest.mark.slow  # process groups of several processes


def config(batch_size: int) -> TrainConfig:
    return TrainConfig(batch_size=batch_size, lr=1e-3, warmup_steps=2, epochs=3, seed=0, checkpoint_every=4)


def _worker(rank: int, world: int, port: int, paths: list[str], out: str, cache: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        train_mapper(tiny_clip(0), paths, config(batch_size=8), MAPPER, out, cache_dir=cache)  # global: 4 per process
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_equal_one_process_on_the_global_batch(tmp_path):
    paths = write_images(tmp_path / "images", 24)
    single = train_mapper(
        tiny_clip(0), paths, config(batch_size=8), MAPPER, tmp_path / "single", cache_dir=tmp_path / "cache1"
    )
    mp.spawn(
        _worker, args=(2, _free_port(), paths, str(tmp_path / "ddp"), str(tmp_path / "cache2")), nprocs=2, join=True
    )
    ddp = torch.load(tmp_path / "ddp" / "mapper.pt", weights_only=False)
    assert ddp["step"] == single.steps == 3 * (24 // 8)
    for name, value in single.mapper.state_dict().items():
        assert torch.allclose(ddp["mapper"][name], value, atol=1e-6), name
    single_log = (tmp_path / "single" / "train_log.csv").read_text().splitlines()
    ddp_log = (tmp_path / "ddp" / "train_log.csv").read_text().splitlines()
    assert len(single_log) == len(ddp_log)
    for a, b in zip(single_log[1:], ddp_log[1:]):
        assert abs(float(a.split(",")[2]) - float(b.split(",")[2])) <= 1e-5  # the loss, step by step


def _embed_worker(rank: int, world: int, port: int, paths: list[str], cache: str, out: str) -> None:
    import numpy as np

    from p2w_lib.clip.features import embed_images_sharded

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        emb = embed_images_sharded(tiny_clip(0), paths, cache, rank, world, batch_size=4, max_bad_fraction=0.5)
        np.save(f"{out}_{rank}.npy", np.asarray(emb.features))
        np.save(f"{out}_{rank}_valid.npy", emb.valid)
    finally:
        dist.destroy_process_group()


def test_sharded_embedding_equals_one_process(tmp_path):
    import numpy as np

    from p2w_lib import embed_images

    paths = write_images(tmp_path / "images", 11) + [str(tmp_path / "missing.png")]
    mp.spawn(
        _embed_worker,
        args=(2, _free_port(), paths, str(tmp_path / "cache"), str(tmp_path / "out")),
        nprocs=2,
        join=True,
    )
    single = embed_images(tiny_clip(0), paths, max_bad_fraction=0.5)
    # a second sharded run finds the complete cache entry and every rank reads it (no shard work)
    mp.spawn(
        _embed_worker,
        args=(2, _free_port(), paths, str(tmp_path / "cache"), str(tmp_path / "again")),
        nprocs=2,
        join=True,
    )
    for out in ("out", "again"):
        for rank in (0, 1):
            assert np.allclose(np.load(tmp_path / f"{out}_{rank}.npy"), np.asarray(single.features), atol=1e-5)
            assert np.array_equal(np.load(tmp_path / f"{out}_{rank}_valid.npy"), single.valid)
