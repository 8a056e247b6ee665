"""Typed configuration: every knob lives in a frozen dataclass, never in a global or an args bag.

`from_dict` turns a plain mapping (a section of params.yaml, a checkpoint's saved config) into
one of these, refusing unknown keys and wrong types with a message that names where they came from.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class ClipConfig:
    """Which frozen CLIP to use.

    model: an open_clip model name (`ViT-L-14`), or `local-dir:PATH` for a folder holding
        `open_clip_config.json` (+ optional weights), or the name of a config shipped in
        `p2w_lib/model_configs/` (e.g. `p2w-tiny`), which resolves to that folder.
    pretrained: an open_clip pretrained tag (`openai`) or a path to a weights file; None = random.
    init_seed: seeds the random initialisation when no weights are loaded (tests, demo).
    """

    model: str = "ViT-L-14"
    pretrained: str | None = "openai"
    init_seed: int = 0
    precision: str = "fp32"
    device: str = "cpu"
    cache_dir: str | None = None


@dataclass(frozen=True)
class MapperConfig:
    """Pic2Word's IM2TEXT network: n_layers x (Linear -> Dropout -> ReLU), then fc_out."""

    hidden_dim: int = 512
    n_layers: int = 2
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """Mapper training. Defaults are the paper's recipe: a global contrastive batch of 512 (the
    original's 4 GPUs x 128 with features gathered across GPUs), lr 1e-4, wd 0.1, 30 epochs, 10k
    warm-up steps. `batch_size` is global: under torchrun each process takes batch_size / processes."""

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


@dataclass(frozen=True)
class LinCIRConfig:
    """LinCIR's language-only training of phi (navervision/lincir `train_phi.py`). Defaults are its
    published recipe for ViT-L/14: 8 GPUs x 64 captions, AdamW lr 1e-4 (constant, no warm-up),
    weight decay 0.01, 20,000 steps, phi dropout 0.5, hidden width 4 x the CLIP embedding width, and
    noise of per-sample scale U(0, 1) x N(0, I) added to the caption embedding."""

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


@dataclass(frozen=True)
class SEARLEConfig:
    """SEARLE (miccunifi/SEARLE): optimisation-based textual inversion (OTI) of each training image,
    then phi distilled from the OTI tokens. Defaults are its published recipe: OTI 350 AdamW steps
    (lr 2e-2, weight decay 0.01) on batches of 32, tokens initialised N(0, 0.02^2), an EMA of decay
    0.99 kept, loss (1 x cosine(template, image) + 0.5 x phrase regulariser) / 1.5 over the image's
    top 15 concepts; phi of hidden 4 x the embedding width and dropout 0.5, AdamW lr 1e-4, weight
    decay 0.01, batches of 256, loss 1 x contrastive distillation (temperature 0.25) + 0.75 x the
    phrase regulariser over the top 150 concepts, 100 epochs of the original's 100,000 images."""

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


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Validate `value` against a (simple) type hint; tuples/lists become tuples."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: expected a list, got {value!r}")
            return tuple(_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, naming `where` in every error."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {unknown}; known settings of {cls.__name__}: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return validate(cls(**kwargs), where)


def _positive(v) -> bool:
    return v > 0


def _non_negative(v) -> bool:
    return v >= 0


def _fraction(v) -> bool:
    return 0 <= v <= 1


# Ranges, per config class: key -> (test, what the value must be). Checked when a config is read
# from params.yaml (the message names the file and key) and when the library is called directly.
RANGES: dict[str, dict[str, tuple[Any, str]]] = {
    "MapperConfig": {"hidden_dim": (_positive, "> 0"), "n_layers": (_positive, "> 0"),
                     "dropout": (lambda v: 0 <= v < 1, "in [0, 1)")},
    "TrainConfig": {
        "batch_size": (_positive, "> 0"), "lr": (_positive, "> 0"), "weight_decay": (_non_negative, ">= 0"),
        "epochs": (_positive, "at least 1 (0 would save an untrained mapper)"),
        "max_steps": (lambda v: v is None or v > 0, "null or at least 1"), "warmup_steps": (_non_negative, ">= 0"),
        "checkpoint_every": (_positive, "at least 1"), "log_every": (_positive, "at least 1"),
        "num_workers": (_non_negative, ">= 0"), "embed_batch_size": (_positive, "> 0"),
        "max_bad_fraction": (_fraction, "in [0, 1]"),
        "crop_scale": (lambda v: 0 < v[0] <= v[1] <= 1, "two numbers 0 < low <= high <= 1"),
        "augment_views": (_positive, "at least 1 (1 = no augmentation)"),
        "cache_dtype": (lambda v: v in ("float32", "float16"), "float32 or float16"),
    },
    "DemoClipConfig": {"steps": (_positive, "at least 1"), "batch_size": (_positive, "> 0"), "lr": (_positive, "> 0"),
                       "weight_decay": (_non_negative, ">= 0"), "warmup_steps": (_non_negative, ">= 0"),
                       "checkpoint_every": (_positive, "at least 1"),
                       "hard_negatives": (_fraction, "in [0, 1]"),
                       "init_logit_scale": (lambda v: 0 < v <= 100, "in (0, 100] (CLIP caps it at 100)")},
    "LaunchConfig": {"nproc_per_node": (_positive, "at least 1")},
    "LinCIRConfig": {"hidden_mult": (_positive, "at least 1"), "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
                     "batch_size": (_positive, "> 0"), "lr": (_positive, "> 0"), "weight_decay": (_non_negative, ">= 0"),
                     "steps": (_positive, "at least 1"), "warmup_steps": (_non_negative, ">= 0"),
                     "noise_scale": (_non_negative, ">= 0"), "checkpoint_every": (_positive, "at least 1"),
                     "log_every": (_positive, "at least 1")},
    "SEARLEConfig": {
        "min_concept_count": (_positive, "at least 1"), "phrases_per_concept": (_positive, "at least 1"),
        "oti_images": (lambda v: v is None or v > 0, "null or at least 1"), "oti_steps": (_positive, "at least 1"),
        "oti_lr": (_positive, "> 0"), "oti_weight_decay": (_non_negative, ">= 0"),
        "oti_batch_size": (_positive, "> 0"), "oti_top_k": (_positive, "at least 1"),
        "oti_lambda_cos": (_non_negative, ">= 0"), "oti_lambda_reg": (_non_negative, ">= 0"),
        "ema_decay": (lambda v: 0 <= v < 1, "in [0, 1)"), "hidden_mult": (_positive, "at least 1"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"), "batch_size": (_positive, "> 0"), "lr": (_positive, "> 0"),
        "weight_decay": (_non_negative, ">= 0"), "steps": (_positive, "at least 1"),
        "lambda_distil": (_non_negative, ">= 0"), "lambda_reg": (_non_negative, ">= 0"),
        "temperature": (_positive, "> 0"), "top_k": (_positive, "at least 1"),
        "checkpoint_every": (_positive, "at least 1"), "log_every": (_positive, "at least 1"),
        "max_bad_fraction": (_fraction, "in [0, 1]")},
}


def validate(cfg: T, where: str | None = None) -> T:
    """`cfg` itself, or ConfigError naming `where`.key and the allowed range of every bad value."""
    where = where or type(cfg).__name__
    problems = [f"{where}.{key}: must be {need}, got {getattr(cfg, key)!r}"
                for key, (ok, need) in RANGES.get(type(cfg).__name__, {}).items() if not ok(getattr(cfg, key))]
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, JSON-friendly dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


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
    fiq_train_triplets: int = 100
    caption_drop: float = 0.7  # objects: each visible attribute left out of a title with this probability
    colour_caption_drop: float = 0.5  # objects' colour: named a little more often (titles often name it)
    garment_caption_drop: float = 0.3  # garments: product titles list most attributes
    workers: int = 2


@dataclass(frozen=True)
class DemoClipConfig:
    """Pretraining the demo CLIP from scratch on the demo world's CC3M-like list."""

    model: str = "p2w-demo"  # a config folder in p2w_lib/model_configs/
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


@dataclass(frozen=True)
class LaunchConfig:
    """How the pipeline runs mapper training: in the notebook's own process (1), or under torchrun
    with this many processes, one per GPU, and an all-gathered loss (see train.py)."""

    nproc_per_node: int = 1
