"""The pipeline's stages as plain functions over typed settings from params.yaml.

Notebooks (and `python -m p2w_lib demo`) call these, one per step: prepare data, pretrain the
demo CLIP, train the mapper, evaluate. Every path a stage reads or writes derives from the
profile's settings, so DVC's deps/outs in dvc.yaml and the code agree.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .clip_backbone import FrozenClip, load_clip
from .config import ClipConfig, ConfigError, DemoClipConfig, DemoWorldConfig, MapperConfig, TrainConfig, from_dict
from .io_utils import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, int] = (10, 50)
    max_bad_fraction: float = 0.01


@dataclass(frozen=True)
class Profile:
    """Every setting of one profile (a section of params.yaml)."""

    name: str
    kind: str  # "demo" (generated world, CLIP trained here) or "paper" (real CLIP and data)
    seeds: tuple[int, ...]
    data_dir: str
    models_dir: str
    cache_dir: str
    results_dir: str
    world: DemoWorldConfig = field(default_factory=DemoWorldConfig)
    clip_pretrain: DemoClipConfig = field(default_factory=DemoClipConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    mapper: MapperConfig = field(default_factory=MapperConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # -- paths, all derived -------------------------------------------------------------
    @property
    def world_dir(self) -> Path:
        return Path(self.data_dir)

    def clip_dir(self, seed: int) -> Path:
        return Path(self.models_dir) / f"clip_seed{seed}"

    def mapper_dir(self, seed: int) -> Path:
        return Path(self.models_dir) / f"mapper_seed{seed}"

    def metrics_path(self, task: str, seed: int) -> Path:
        suffix = "" if seed == self.seeds[0] else f"_seed{seed}"
        return Path(self.results_dir) / "metrics" / f"{task}{suffix}.json"


_SECTIONS = {"world": DemoWorldConfig, "clip_pretrain": DemoClipConfig, "clip": ClipConfig, "mapper": MapperConfig,
             "train": TrainConfig, "eval": EvalConfig}


def load_profile(params_path: str | Path = "params.yaml", profile: str | None = None) -> Profile:
    """Read `profile` (default: params.yaml's `profile:` switch) with every section type-checked."""
    params_path = Path(params_path)
    if not params_path.is_file():
        raise FileNotFoundError(f"{params_path}: parameters file not found; run from the repository root")
    params = yaml.safe_load(params_path.read_text())
    name = profile or params.get("profile")
    if name not in params.get("profiles", {}):
        raise ConfigError(f"{params_path}: profile {name!r} is not among profiles {sorted(params.get('profiles', {}))}")
    raw: dict[str, Any] = dict(params["profiles"][name])
    where = f"{params_path}:profiles.{name}"
    sections = {k: from_dict(cls, raw.pop(k, None), f"{where}.{k}") for k, cls in _SECTIONS.items()}
    required = {"kind", "seeds", "data_dir", "models_dir", "cache_dir", "results_dir"}
    missing, unknown = required - set(raw), set(raw) - required
    if missing or unknown:
        raise ConfigError(f"{where}: missing settings {sorted(missing)}; unknown settings {sorted(unknown)}")
    if raw["kind"] not in ("demo", "paper"):
        raise ConfigError(f"{where}.kind: expected 'demo' or 'paper', got {raw['kind']!r}")
    return Profile(name=name, kind=raw["kind"], seeds=tuple(raw["seeds"]), data_dir=raw["data_dir"],
                   models_dir=raw["models_dir"], cache_dir=raw["cache_dir"], results_dir=raw["results_dir"], **sections)


# -- stages -------------------------------------------------------------------------------

def prepare_demo_world(p: Profile) -> dict:
    from .demo.build import build_world

    return build_world(p.world_dir, p.world)


def pretrain_demo_clip(p: Profile, seed: int) -> Path:
    from dataclasses import replace

    from .demo.clip_pretrain import pretrain_clip

    return pretrain_clip(p.world_dir / "cc3m" / "train.tsv", p.clip_dir(seed), replace(p.clip_pretrain, seed=seed))


def clip_for(p: Profile, seed: int) -> FrozenClip:
    """The frozen CLIP of a run: the demo CLIP pretrained with `seed`, or the paper's CLIP."""
    if p.kind == "demo":
        return load_clip(ClipConfig(model=f"local-dir:{(p.clip_dir(seed) / 'clip').resolve()}", pretrained=None))
    return load_clip(p.clip)


def training_images(p: Profile) -> list[str]:
    from .datasets.cc3m import read_image_caption_list

    return [path for path, _ in read_image_caption_list(p.world_dir / "cc3m" / "train.tsv")]


def train_mapper_stage(p: Profile, seed: int, clip: FrozenClip | None = None):
    from dataclasses import replace

    from .train import train_mapper

    clip = clip or clip_for(p, seed)
    cfg = replace(p.train, seed=seed)
    return train_mapper(clip, training_images(p), cfg, p.mapper, p.mapper_dir(seed), cache_dir=p.cache_dir)


def _oracle(p: Profile, name: str):
    path = p.world_dir / "oracle" / f"{name}.json"
    return json.loads(path.read_text()) if p.kind == "demo" and path.is_file() else None


def evaluate_domain_conversion_stage(p: Profile, seed: int, clip: FrozenClip | None = None) -> dict:
    from .checkpoint import load_mapper
    from .datasets.imagenet_r import PAPER_DOMAINS
    from .demo.world import RENDITIONS
    from .protocols.domain_conversion import evaluate_domain_conversion

    clip = clip or clip_for(p, seed)
    mapper = load_mapper(p.mapper_dir(seed) / "mapper.pt", clip)
    domains = RENDITIONS if p.kind == "demo" else PAPER_DOMAINS
    result = evaluate_domain_conversion(
        clip, mapper, p.world_dir, domains, ks=p.eval.ks, cache_dir=p.cache_dir,
        oracle_texts=_oracle(p, "domain_conversion"), max_bad_fraction=p.eval.max_bad_fraction,
        profile=p.name, seed=seed,
    )
    atomic_write_json(p.metrics_path("domain_conversion", seed), result)
    return result


def evaluate_fashion_iq_stage(p: Profile, seed: int, clip: FrozenClip | None = None) -> dict:
    from .checkpoint import load_mapper
    from .protocols.fashion_iq import evaluate_fashion_iq

    clip = clip or clip_for(p, seed)
    mapper = load_mapper(p.mapper_dir(seed) / "mapper.pt", clip)
    result = evaluate_fashion_iq(
        clip, mapper, p.world_dir / "fashion-iq", ks=p.eval.ks, cache_dir=p.cache_dir,
        oracle_texts=_oracle(p, "fashion_iq"), profile=p.name, seed=seed,
    )
    atomic_write_json(p.metrics_path("fashion_iq", seed), result)
    return result
