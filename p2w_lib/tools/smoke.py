"""A one-minute end-to-end run of the library on a tiny random CLIP and generated images.

It checks the plumbing (images -> CLIP -> mapper -> composed queries -> index -> metrics),
not the method: with random CLIP weights the retrieval numbers are near chance.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from p2w_lib.clip.backbone import load_clip
from p2w_lib.clip.features import embed_images
from p2w_lib.core.config import ClipConfig
from p2w_lib.methods.pic2word.config import MapperConfig, TrainConfig
from p2w_lib.methods.pic2word.train import train_mapper
from p2w_lib.methods.registry import compose_queries
from p2w_lib.retrieval.metrics import relevance_from_labels, score
from p2w_lib.retrieval.topk import topk_search

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def _write_images(folder: Path, n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for i in range(n):
        label = int(rng.integers(len(COLOURS)))
        arr = np.clip(rng.normal(128, 40, (48, 48, 3)), 0, 255).astype(np.uint8)
        x, y = rng.integers(4, 24, 2)
        arr[y : y + 20, x : x + 20] = list(COLOURS.values())[label]
        path = folder / f"{i:05d}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
        labels.append(label)
    return paths, labels


def run_smoke(workdir: str | Path | None = None, seed: int = 0) -> dict[str, dict[str, float]]:
    """Train a mapper on a tiny random CLIP and score the four query methods; returns the table."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir or tmp)
        clip = load_clip(ClipConfig(model="p2w-tiny", pretrained=None, init_seed=seed))
        train_paths, _ = _write_images(root / "train", 256, seed)
        cfg = TrainConfig(batch_size=32, lr=1e-3, epochs=3, warmup_steps=5, seed=seed)
        result = train_mapper(clip, train_paths, cfg, MapperConfig(), root / "run", cache_dir=root / "cache")
        gallery_paths, gallery_labels = _write_images(root / "gallery", 200, seed + 1)
        gallery = embed_images(clip, gallery_paths, cache_dir=root / "cache").tensor(normalize=True)
        query_paths, query_labels = _write_images(root / "queries", 40, seed + 2)
        queries = embed_images(clip, query_paths, cache_dir=root / "cache").tensor()
        prompts = ["a photo of *"] * len(query_paths)
        table = {}
        for method, q in compose_queries(clip, result.mapper, queries, prompts).items():
            _, idx = topk_search(q, gallery, k=10)
            rel, n_rel = relevance_from_labels(idx, torch.tensor(query_labels), torch.tensor(gallery_labels))
            table[method] = score(rel, n_rel, "true_recall", [10])
        return {"train_steps": result.steps, "last_loss": result.last_loss, "methods": table}
