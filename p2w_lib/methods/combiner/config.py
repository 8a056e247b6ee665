"""Combiner's settings (params.yaml section `combiner`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from p2w_lib.core.config import positive


@dataclass(frozen=True)
class CombinerConfig:
    """Combiner's training on labeled triplets over frozen CLIP features (ABaldrati/CLIP4Cir
    `combiner_train.py`). Defaults are its recipe: Adam lr 2e-5 (no weight decay, no schedule),
    batch 1024, 300 epochs, projection 4 x and hidden 8 x the CLIP width (2560 and 5120 for
    RN50x4's 640). Features are embedded once (CLIP is frozen), so the large batch is cheap."""

    RANGES: ClassVar[dict] = {
        "projection_mult": (positive, "at least 1"),
        "hidden_mult": (positive, "at least 1"),
        "batch_size": (lambda v: v >= 2, "at least 2 (the loss contrasts in-batch targets)"),
        "lr": (positive, "> 0"),
        "epochs": (positive, "at least 1"),
        "checkpoint_every": (positive, "at least 1"),
        "log_every": (positive, "at least 1"),
    }

    # Train a Combiner on each source's triplets (a model of its own); False: neither trained nor scored.
    fashion_iq: bool = True
    cirr: bool = True
    projection_mult: int = 4
    hidden_mult: int = 8
    batch_size: int = 1024
    lr: float = 2e-5
    epochs: int = 300
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 1
