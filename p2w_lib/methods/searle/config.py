"""SEARLE's settings (params.yaml section `searle`), shared by its OTI, its phi and SEARLE-OTI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from p2w_lib.core.config import fraction, non_negative, positive


@dataclass(frozen=True)
class SEARLEConfig:
    """SEARLE (miccunifi/SEARLE): optimisation-based textual inversion (OTI) of each training image,
    then phi distilled from the OTI tokens. Defaults are its published recipe: OTI 350 AdamW steps
    (lr 2e-2, weight decay 0.01) on batches of 32, tokens initialised N(0, 0.02^2), an EMA of decay
    0.99 kept, loss (1 x cosine(template, image) + 0.5 x phrase regulariser) / 1.5 over the image's
    top 15 concepts; phi of hidden 4 x the embedding width and dropout 0.5, AdamW lr 1e-4, weight
    decay 0.01, batches of 256, loss 1 x contrastive distillation (temperature 0.25) + 0.75 x the
    phrase regulariser over the top 150 concepts, 100 epochs of the original's 100,000 images."""

    # Checked by core.config.validate when read from params.yaml or called directly: key -> (test, what it must be).
    RANGES: ClassVar[dict] = {
        "min_concept_count": (positive, "at least 1"),
        "phrases_per_concept": (positive, "at least 1"),
        "oti_images": (lambda v: v is None or v > 0, "null or at least 1"),
        "oti_steps": (positive, "at least 1"),
        "oti_lr": (positive, "> 0"),
        "oti_weight_decay": (non_negative, ">= 0"),
        "oti_batch_size": (positive, "> 0"),
        "oti_top_k": (positive, "at least 1"),
        "oti_lambda_cos": (non_negative, ">= 0"),
        "oti_lambda_reg": (non_negative, ">= 0"),
        "ema_decay": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "hidden_mult": (positive, "at least 1"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "batch_size": (positive, "> 0"),
        "lr": (positive, "> 0"),
        "weight_decay": (non_negative, ">= 0"),
        "steps": (positive, "at least 1"),
        "lambda_distil": (non_negative, ">= 0"),
        "lambda_reg": (non_negative, ">= 0"),
        "temperature": (positive, "> 0"),
        "top_k": (positive, "at least 1"),
        "checkpoint_every": (positive, "at least 1"),
        "log_every": (positive, "at least 1"),
        "max_bad_fraction": (fraction, "in [0, 1]"),
    }

    enabled: bool = True  # False: the pipeline neither trains nor evaluates SEARLE
    # Concepts and phrases: the offline substitute for GPT phrases of Open Images classes (concepts.py).
    min_concept_count: int = 5
    phrases_per_concept: int = 32
    # OTI of the training images.
    oti_images: int | None = 100000  # a random subset of the training list of this size (None: all of it)
    oti_steps: int = 350
    oti_lr: float = 2e-2
    oti_weight_decay: float = 0.01
    oti_batch_size: int = 32
    oti_top_k: int = 15
    oti_lambda_cos: float = 1.0
    oti_lambda_reg: float = 0.5
    ema_decay: float = 0.99
    # phi, distilled from the OTI tokens.
    hidden_mult: int = 4
    dropout: float = 0.5
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.01
    steps: int = 39000
    lambda_distil: float = 1.0
    lambda_reg: float = 0.75
    temperature: float = 0.25
    top_k: int = 150
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 1
    max_bad_fraction: float = 0.01  # unreadable training images: skipped and counted; more than this share raises
