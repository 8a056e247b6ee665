"""Reading checkpoints safely, and checking that a trained network fits the CLIP in use.

Every trained network (Pic2Word's mapper, a phi, SEARLE's OTI tokens) is saved as a plain dict of
tensors and containers, atomically; each method's own module writes and reads its format.
"""

from __future__ import annotations

from pathlib import Path

import torch

from p2w_lib.clip.backbone import FrozenClip


class CheckpointError(ValueError):
    """A checkpoint is unreadable, of an unknown format, or does not fit the CLIP in use."""


def read_checkpoint(
    path: str | Path, what: str = "mapper checkpoint", how: str = "train one first (p2w_lib.methods.pic2word.train)"
) -> dict:
    """The checkpoint's contents, unpickled safely: only tensors and plain containers (dict, list,
    tuple, str, numbers, None) are allowed, which is all that ours and the official Pic2Word,
    SEARLE and LinCIR checkpoints hold. A file that asks for anything else (a pickled object can run
    code when it is loaded) is refused before any of it runs. `what` and `how` word the error for a
    missing file: what was looked for, and how to get it."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; {how}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused: the file holds objects other than tensors and plain containers, which could run "
            f"code when loaded ({str(err).splitlines()[0]}). Our checkpoints never need them; use a checkpoint "
            "from a source you trust."
        ) from err
    except Exception as err:  # torch raises many types for a damaged file; name the file and re-raise
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from err


def check_fits(
    path: Path,
    clip: FrozenClip,
    saved: dict | None,
    embed_dim: int,
    token_dim: int,
    strict: bool,
    network: str = "mapper",
) -> None:
    """Refuse a trained `network` (mapper, phi) of other widths than `clip`, or, when `strict` and the
    checkpoint names its CLIP (`saved`, a ClipIdentity dict; official releases name none), of
    other CLIP weights."""
    if (embed_dim, token_dim) != (clip.embed_dim, clip.token_dim):
        raise CheckpointError(
            f"{path}: {network} maps {embed_dim}-d image embeddings to {token_dim}-d tokens, but the CLIP in use "
            f"({clip.identity.model}) has embed_dim={clip.embed_dim}, text width={clip.token_dim}. "
            f"Load the CLIP this {network} was trained with."
        )
    if strict and saved is not None and saved.get("fingerprint") != clip.identity.fingerprint:
        raise CheckpointError(
            f"{path}: {network} was trained on CLIP {saved.get('model')}/{saved.get('pretrained')} "
            f"(weights {saved.get('fingerprint')}), but the CLIP in use is {clip.identity.model}/"
            f"{clip.identity.pretrained} (weights {clip.identity.fingerprint}). Load the matching CLIP, "
            "or pass strict_clip=False if you really mean to mix them."
        )
