"""Which code produced a checkpoint: a hash of the library modules a training loop runs.

DVC re-runs a training stage when its code changes, but the model folders persist (so a killed run
can resume). A checkpoint therefore records the hash of the code that wrote it, and the pipeline
retrains instead of reusing or resuming a checkpoint written by other code.
"""
from __future__ import annotations

import hashlib
import importlib.util
from typing import Sequence

MAPPER_TRAINING = ("train", "loop", "mapper", "composed", "loss", "features", "images", "checkpoint", "clip_backbone")
LINCIR_TRAINING = ("lincir", "loop", "phi", "phi_runs", "keywords", "composed", "train", "checkpoint", "clip_backbone")
SEARLE_TRAINING = ("searle", "oti", "concepts", "keywords", "loop", "phi", "phi_runs", "composed", "train", "checkpoint",
                   "clip_backbone")
# SEARLE-OTI at query time: the inversion and what it composes with (its token store records this hash).
SEARLE_OTI_QUERIES = ("oti_queries", "oti", "concepts", "composed", "loop", "checkpoint", "clip_backbone")
CLIP_PRETRAINING = ("demo.clip_pretrain", "loop", "composed", "loss", "images", "train")


def code_fingerprint(modules: Sequence[str]) -> str:
    """sha256 over the source files of `p2w_lib.<module>` for each module, in the given order."""
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(f"{__package__}.{name}")
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"{__package__}.{name}: no source to fingerprint")
        with open(spec.origin, "rb") as fh:
            h.update(name.encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]
