"""LinCIR's settings (params.yaml section `lincir`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from p2w_lib.core.config import non_negative, positive


@dataclass(frozen=True)
class LinCIRConfig:
    """LinCIR's language-only training of phi (navervision/lincir `train_phi.py`). Defaults are its
    published recipe for ViT-L/14: 8 GPUs x 64 captions, AdamW lr 1e-4 (constant, no warm-up),
    weight decay 0.01, 20,000 steps, phi dropout 0.5, hidden width 4 x the CLIP embedding width, and
    noise of per-sample scale U(0, 1) x N(0, I) added to the caption embedding."""

    # Checked by core.config.validate when read from params.yaml or called directly: key -> (test, what it must be).
    RANGES: ClassVar[dict] = {
        "hidden_mult": (positive, "at least 1"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "batch_size": (positive, "> 0"),
        "lr": (positive, "> 0"),
        "weight_decay": (non_negative, ">= 0"),
        "steps": (positive, "at least 1"),
        "warmup_steps": (non_negative, ">= 0"),
        "noise_scale": (non_negative, ">= 0"),
        "checkpoint_every": (positive, "at least 1"),
        "log_every": (positive, "at least 1"),
    }

    enabled: bool = True  # False: the pipeline neither trains nor evaluates LinCIR
    hidden_mult: int = 4
    dropout: float = 0.5
    batch_size: int = 512
    lr: float = 1e-4
    weight_decay: float = 0.01
    steps: int = 20000
    warmup_steps: int = 0
    noise_scale: float = 1.0
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 1
