"""p2w_lib: Pic2Word zero-shot composed image retrieval on a frozen open_clip CLIP.

Data flows one way: images -> CLIP encoders (`clip_backbone`, `features`) -> mapper (`mapper`)
-> composed query (`composed`, `queries`) -> index (`retrieval`) -> metrics (`metrics`).
"""
from .checkpoint import load_mapper, save_mapper_checkpoint
from .clip_backbone import ClipIdentity, FrozenClip, load_clip
from .composed import encode_composed
from .config import ClipConfig, ConfigError, MapperConfig, TrainConfig
from .features import embed_images
from .mapper import Mapper
from .queries import METHODS, compose_queries
from .retrieval import topk_search
from .train import train_mapper

__all__ = [
    "ClipConfig", "ClipIdentity", "ConfigError", "FrozenClip", "METHODS", "Mapper", "MapperConfig",
    "TrainConfig", "compose_queries", "embed_images", "encode_composed", "load_clip", "load_mapper",
    "save_mapper_checkpoint", "topk_search", "train_mapper",
]
