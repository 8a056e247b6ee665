"""Pic2Word's settings: the mapping network and its training (params.yaml sections `mapper`, `train`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from p2w_lib.core.config import fraction, non_negative, positive


@dataclass(frozen=True)
class MapperConfig:
    """Pic2Word's IM2TEXT network: n_layers x (Linear -> Dropout -> ReLU), then fc_out."""

    # Checked by core.config.validate when read from params.yaml or called directly: key -> (test, what it must be).
    RANGES: ClassVar[dict] = {
        "hidden_dim": (positive, "> 0"),
        "n_layers": (positive, "> 0"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    }

    hidden_dim: int = 512
    n_layers: int = 2
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """Mapper training. Defaults are the paper's recipe: a global contrastive batch of 512 (the
    original's 4 GPUs x 128 with features gathered across GPUs), lr 1e-4, wd 0.1, 30 epochs, 10k
    warm-up steps. `batch_size` is global: under torchrun each process takes batch_size / processes."""

    # Checked by core.config.validate when read from params.yaml or called directly: key -> (test, what it must be).
    RANGES: ClassVar[dict] = {
        "batch_size": (positive, "> 0"),
        "lr": (positive, "> 0"),
        "weight_decay": (non_negative, ">= 0"),
        "epochs": (positive, "at least 1 (0 would save an untrained mapper)"),
        "max_steps": (lambda v: v is None or v > 0, "null or at least 1"),
        "warmup_steps": (non_negative, ">= 0"),
        "checkpoint_every": (positive, "at least 1"),
        "log_every": (positive, "at least 1"),
        "num_workers": (non_negative, ">= 0"),
        "embed_batch_size": (positive, "> 0"),
        "max_bad_fraction": (fraction, "in [0, 1]"),
        "crop_scale": (lambda v: 0 < v[0] <= v[1] <= 1, "two numbers 0 < low <= high <= 1"),
        "augment_views": (positive, "at least 1 (1 = no augmentation)"),
        "cache_dtype": (lambda v: v in ("float32", "float16"), "float32 or float16"),
    }

    prompt: str = "a photo of *"
    batch_size: int = 512
    lr: float = 1e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    epochs: int = 30
    max_steps: int | None = None  # stop early (demo, tests); None = run all epochs
    warmup_steps: int = 10000
    seed: int = 0
    # False: image embeddings are computed once and cached (CLIP is frozen, so this is exact
    # without augmentation). True: re-encode every step with RandomResizedCrop, as the original.
    recompute_image_features: bool = False
    # With cached features: 1 = the plain preprocessed image (no augmentation); K > 1 = K
    # RandomResizedCrop views of every image embedded once, each step drawing one view per image
    # (the paper's augmentation at K image-encoder passes per image instead of one per epoch).
    augment_views: int = 1
    crop_scale: tuple[float, float] = (0.9, 1.0)
    checkpoint_every: int = 500
    log_every: int = 1
    num_workers: int = 0
    embed_batch_size: int = 256
    cache_dtype: str = "float32"  # "float16" halves the memory-mapped embedding cache (paper scale)
    max_bad_fraction: float = 0.01
    amp: bool = True  # mixed precision on CUDA only; CPU always runs float32
