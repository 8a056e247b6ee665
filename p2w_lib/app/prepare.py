"""The stages before training: the data (the demo world, or the paper's datasets checked and linked)
and, in the demo, one CLIP pretrained per seed with its zero-shot sanity table."""

from __future__ import annotations

import shutil

from p2w_lib.app import models
from p2w_lib.app.report import sanity_summary
from p2w_lib.core.files import atomic_write_json
from p2w_lib.demo.sanity import zero_shot_table


def prepare_data(p) -> dict:
    """Demo: render the world. Paper: fetch, link, check and report the real data (paper_data.py)."""
    return p.source.prepare(p)


def pretrain_clips(p) -> dict[int, dict[str, float]]:
    """Demo: pretrain one CLIP per seed and record its zero-shot sanity table. Paper: nothing (its CLIP is released)."""
    if not p.source.trains_clip:
        return {}
    tables = {}
    plots = p.results_dir / "plots" / "clip_loss"
    plots.mkdir(parents=True, exist_ok=True)
    for seed in p.seeds:
        p.source.pretrain_clip(p, seed)
        shutil.copyfile(p.clip_dir(seed) / "pretrain_log.csv", plots / f"seed{seed}.csv")  # for `dvc plots show`
        tables[seed] = zero_shot_table(models.clip_for(p, seed), p.world_dir, p.cache_dir)
    atomic_write_json(
        p.results_dir / "metrics" / "demo_clip_sanity.json",
        {"profile": p.name, "zero_shot_accuracy": {str(s): t for s, t in tables.items()}},
    )
    atomic_write_json(p.summary_path("demo_clip"), sanity_summary(tables))
    return tables
