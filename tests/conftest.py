"""Shared fixtures: tiny seeded random CLIPs (no weights exist offline) and small image files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2w_lib import ClipConfig, load_clip

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def tiny_clip(seed: int = 0, model: str = "p2w-tiny"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip(ClipConfig(model=model, pretrained=None, init_seed=seed))


@pytest.fixture(scope="session")
def clip():
    return tiny_clip(0)


@pytest.fixture(scope="session")
def clip_seed1():
    return tiny_clip(1)


def tiny_world(tmp_path: Path, monkeypatch):
    """The tiny profile with its world built under `tmp_path`, which becomes the working directory
    (with a copy of the project's params.yaml), as the pipeline expects."""
    import shutil

    from p2w_lib.app.profile import load_profile
    from p2w_lib.demo.build import build_world

    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    p = load_profile("params.yaml", "tiny")
    build_world(p.world_dir, p.world)
    return p


def write_images(folder: Path, n: int, seed: int = 0, size: int = 40) -> list[str]:
    """n small random-colour PNGs with a random rectangle, so embeddings differ."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = np.empty((size, size, 3), dtype=np.uint8)
        arr[:] = rng.integers(0, 256, 3)
        x0, y0 = rng.integers(0, size // 2, 2)
        arr[y0 : y0 + size // 3, x0 : x0 + size // 3] = rng.integers(0, 256, 3)
        path = folder / f"img_{i:04d}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def image_paths(tmp_path):
    return write_images(tmp_path / "images", 24)
