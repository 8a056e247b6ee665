"""Where a profile's CLIP and data come from: every difference between the demo and the paper profiles.

A profile's `kind` (params.yaml) picks one of these; the stages ask it instead of branching on the
kind, so what the demo does differently from the paper pipeline is read in one place.
- demo: a world generated here (data/<profile>/), a small CLIP pretrained here, one per seed;
- paper: the real datasets that data preparation fetched and checked, and a released CLIP.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from p2w_lib.app import paper_data
from p2w_lib.app.benchmarks import BENCHMARKS
from p2w_lib.app.paper_data import CC3M_LIST
from p2w_lib.clip.backbone import FrozenClip, load_clip, resolve_model_name
from p2w_lib.clip.weights import check_clip_settings
from p2w_lib.core.config import ClipConfig
from p2w_lib.data.cc3m import read_image_caption_list
from p2w_lib.data.imagenet_r import PAPER_DOMAINS
from p2w_lib.demo.build import build_world
from p2w_lib.demo.clip_pretrain import pretrain_clip
from p2w_lib.demo.world import RENDITIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSource:
    """The generated world and the CLIP pretrained on it (one per seed)."""

    name: str = "demo"
    rendition_domains: tuple[str, ...] = RENDITIONS  # label-index order
    results_subdir: str | None = None  # the committed results/ itself
    trains_clip: bool = True

    def prepare(self, p) -> dict:
        return build_world(p.world_dir, p.world)

    def pretrain_clip(self, p, seed: int) -> Path:
        return pretrain_clip(
            p.world_dir / "cc3m" / "train.tsv",
            p.clip_dir(seed),
            replace(p.clip_pretrain, seed=seed),
            restart_on_change=True,
        )

    def clip(self, p, seed: int) -> FrozenClip:
        return load_clip(ClipConfig(model=f"local-dir:{(p.clip_dir(seed) / 'clip').resolve()}", pretrained=None))

    def clip_files(self, p, seed: int) -> list[Path]:
        """What must exist before the CLIP of `seed` loads."""
        return [p.clip_dir(seed) / "clip"]

    def training_list(self, p) -> list[tuple[str, str]]:
        return read_image_caption_list(p.world_dir / "cc3m" / "train.tsv")

    def oracle_texts(self, p, benchmark: str):
        """The world's oracle texts of `benchmark` (one per query, naming the truth), or None."""
        path = p.world_dir / "oracle" / f"{benchmark}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    # Only the benchmarks the world has an analogue of are scored (Benchmark.in_demo); the others get
    # no results file at all, where the paper profile records why one was left out.
    records_switched_off: bool = False

    def evaluated(self, p) -> tuple[str, ...]:
        """The benchmarks the evaluation stages score, in registry order."""
        return tuple(n for n, b in BENCHMARKS.items() if b.in_demo)

    def switched_on(self, p, benchmark: str) -> bool:
        return BENCHMARKS[benchmark].in_demo


@dataclass(frozen=True)
class PaperSource:
    """The real datasets (prepared by paper_data.py) and a released CLIP (profiles.<name>.clip)."""

    name: str = "paper"
    rendition_domains: tuple[str, ...] = PAPER_DOMAINS
    results_subdir: str | None = "profile"  # results/<profile>/, beside the committed demo results
    trains_clip: bool = False
    records_switched_off: bool = True  # a benchmark left out of paper_data.benchmarks gets a file saying so

    def prepare(self, p) -> dict:
        # The CLIP setting is checked first: a wrong weights path should not surface after the data prep.
        log.info(
            check_clip_settings(
                resolve_model_name(p.clip.model), p.clip.pretrained, p.clip.cache_dir, f"profiles.{p.name}.clip"
            )
        )
        # The training triplets are needed only to train a supervised Combiner on them.
        return paper_data.prepare_paper_data(
            p.world_dir,
            p.paper_data,
            fashion_iq_train=p.enabled("combiner_fashion_iq"),
            cirr_train=p.enabled("combiner_cirr"),
        )

    def clip(self, p, seed: int) -> FrozenClip:
        return load_clip(p.clip)

    def clip_files(self, p, seed: int) -> list[Path]:
        return []

    def training_list(self, p) -> list[tuple[str, str]]:
        return read_image_caption_list(p.prepared_dir / CC3M_LIST, root=".")

    def oracle_texts(self, p, benchmark: str):
        return None  # real data has no oracle

    def evaluated(self, p) -> tuple[str, ...]:
        return tuple(n for n in BENCHMARKS if n in p.paper_data.benchmarks)

    def switched_on(self, p, benchmark: str) -> bool:
        return benchmark in p.paper_data.benchmarks


SOURCES = {"demo": DemoSource(), "paper": PaperSource()}
