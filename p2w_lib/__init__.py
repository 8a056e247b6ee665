"""p2w_lib: Pic2Word zero-shot composed image retrieval on a frozen open_clip CLIP.

Data flows one way, and the folders follow it: images (`data/`) -> CLIP encoders (`clip/`) ->
method (`methods/`: the network that makes the pseudo token, or a training-free composition) ->
composed query -> index (`retrieval/`) -> metrics (`protocols/`). `training/` is the shared loop,
`core/` the typed configs and file helpers; `demo/` builds the generated world, `app/` runs the
pipeline's stages and reports, `tools/` holds benchmarks, rehearsal and ablations.

The names below are the library's face, imported on first use: `import p2w_lib` loads no torch,
and no module of the package imports through this face, so a checkpoint's code fingerprint (the
import closure of its training entry point) holds only the code that training runs.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_FACE = {
    "ClipConfig": "p2w_lib.core.config",
    "ConfigError": "p2w_lib.core.config",
    "MapperConfig": "p2w_lib.methods.pic2word.config",
    "TrainConfig": "p2w_lib.methods.pic2word.config",
    "ClipIdentity": "p2w_lib.clip.backbone",
    "FrozenClip": "p2w_lib.clip.backbone",
    "load_clip": "p2w_lib.clip.backbone",
    "encode_composed": "p2w_lib.clip.composed",
    "embed_images": "p2w_lib.clip.features",
    "Mapper": "p2w_lib.methods.pic2word.network",
    "load_mapper": "p2w_lib.methods.pic2word.checkpoint",
    "save_mapper_checkpoint": "p2w_lib.methods.pic2word.checkpoint",
    "train_mapper": "p2w_lib.methods.pic2word.train",
    "METHODS": "p2w_lib.methods.registry",
    "compose_queries": "p2w_lib.methods.registry",
    "topk_search": "p2w_lib.retrieval.topk",
}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name not in _FACE:
        raise AttributeError(f"module 'p2w_lib' has no attribute {name!r}")
    return getattr(importlib.import_module(_FACE[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])
