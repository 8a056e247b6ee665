"""The demo's settings: the generated world (`world`) and the demo CLIP's pretraining (`clip_pretrain`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from p2w_lib.core.config import fraction, non_negative, positive


@dataclass(frozen=True)
class DemoWorldConfig:
    """Size of the procedurally generated demo world (see p2w_lib.demo)."""

    seed: int = 0
    image_size: int = 64
    pretrain_per_class_domain: int = 180  # CC3M-like list: 16 classes x 4 rendition domains x this
    pretrain_photos_per_class: int = 540  # and 16 classes x this photos (web captions are mostly of photos)
    pretrain_garments_per_category: int = 3200
    eval_queries_per_class: int = 20  # photo queries (ImageNet-R analogue)
    eval_renditions_per_class_domain: int = 30
    fiq_val_triplets: int = 1000  # per category
    fiq_val_gallery: int = 1000  # distinct garments per category (a shirt or top has about 1,100)
    fiq_train_triplets: int = 2000  # per category: Combiner's labeled training triplets (its own images)
    fiq_train_gallery: int = 1000  # distinct garments per category they are drawn among
    cirr_val_sets: int = 150  # CIRR analogue: image sets of six photos, three queries each
    cirr_train_sets: int = 400  # Combiner's CIRR-style training triplets (other renders), three per set
    caption_drop: float = 0.7  # objects: each visible attribute left out of a title with this probability
    colour_caption_drop: float = 0.5  # objects' colour: named a little more often (titles often name it)
    garment_caption_drop: float = 0.3  # garments: product titles list most attributes
    workers: int = 2


@dataclass(frozen=True)
class DemoClipConfig:
    """Pretraining the demo CLIP from scratch on the demo world's CC3M-like list."""

    # Checked by core.config.validate when read from params.yaml or called directly: key -> (test, what it must be).
    RANGES: ClassVar[dict] = {
        "steps": (positive, "at least 1"),
        "batch_size": (positive, "> 0"),
        "lr": (positive, "> 0"),
        "weight_decay": (non_negative, ">= 0"),
        "warmup_steps": (non_negative, ">= 0"),
        "checkpoint_every": (positive, "at least 1"),
        "hard_negatives": (fraction, "in [0, 1]"),
        "init_logit_scale": (lambda v: 0 < v <= 100, "in (0, 100] (CLIP caps it at 100)"),
    }

    model: str = "p2w-demo"  # a config folder in p2w_lib/clip/model_configs/
    steps: int = 400
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 40
    seed: int = 0
    checkpoint_every: int = 100
    hard_negatives: float = 0.0  # share of each batch drawn in groups that differ only in the object (demo/batches.py)
    same_caption_positives: bool = True  # identical captions in a batch are positives of each other
    # exp(logit scale) at initialisation; 1/0.07 is CLIP's. A higher start keeps the modality gap
    # real CLIP has, the gap that makes the image + text baseline weak (docs/demo_clip.md, section 3).
    init_logit_scale: float = 1 / 0.07
