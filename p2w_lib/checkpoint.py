"""Mapper checkpoints that carry their own config and the identity of the CLIP they were trained on.

Our format (a dict, saved atomically):
    {"format": "p2w_lib.mapper/1", "mapper": state_dict, "mapper_config": {...},
     "clip": ClipIdentity dict, "train": {...}, "step": int, ...training state for resume}
The official Pic2Word format is also read: `state_dict_img2text`, possibly `module.`-prefixed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .clip_backbone import ClipIdentity, FrozenClip
from .config import MapperConfig, from_dict, to_dict
from .io_utils import atomic_torch_save
from .mapper import Mapper

FORMAT = "p2w_lib.mapper/1"


class CheckpointError(ValueError):
    """A checkpoint is unreadable, of an unknown format, or does not fit the CLIP in use."""


def save_mapper_checkpoint(path: str | Path, mapper: Mapper, mapper_cfg: MapperConfig, clip: ClipIdentity, **extra: Any) -> None:
    payload = {
        "format": FORMAT,
        "mapper": {k: v.detach().cpu() for k, v in mapper.state_dict().items()},
        "mapper_config": to_dict(mapper_cfg),
        "clip": clip.to_dict(),
        **extra,
    }
    atomic_torch_save(payload, path)


def read_checkpoint(path: str | Path, what: str = "mapper checkpoint",
                    how: str = "train one first (p2w_lib.train)") -> dict:
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


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _infer_official_config(state: dict[str, torch.Tensor]) -> tuple[MapperConfig, int, int]:
    """Recover (config, embed_dim, token_dim) from IM2TEXT weight shapes."""
    n_layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    if n_layers == 0 or "fc_out.weight" not in state:
        raise CheckpointError(f"not an IM2TEXT state dict (keys: {sorted(state)[:6]} ...)")
    embed_dim = state["layers.0.0.weight"].shape[1]
    hidden_dim, token_dim = state["fc_out.weight"].shape[1], state["fc_out.weight"].shape[0]
    return MapperConfig(hidden_dim=hidden_dim, n_layers=n_layers), embed_dim, token_dim


def check_fits(path: Path, clip: FrozenClip, saved: dict | None, embed_dim: int, token_dim: int, strict: bool,
               network: str = "mapper") -> None:
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


def load_mapper(path: str | Path, clip: FrozenClip, strict_clip: bool = True) -> Mapper:
    """Load a mapper (ours or the official Pic2Word format) for `clip`, in eval mode."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        cfg = from_dict(MapperConfig, ckpt["mapper_config"], f"{path}:mapper_config")
        state, saved_clip = ckpt["mapper"], ckpt["clip"]
        embed_dim, token_dim = saved_clip["embed_dim"], saved_clip["token_dim"]
    elif isinstance(ckpt, dict) and "state_dict_img2text" in ckpt:
        state, saved_clip = _strip_module(ckpt["state_dict_img2text"]), None
        cfg, embed_dim, token_dim = _infer_official_config(state)
    else:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: unknown checkpoint format (top-level keys {keys}); expected a p2w_lib mapper "
            "checkpoint or an official Pic2Word checkpoint with 'state_dict_img2text'."
        )
    check_fits(path, clip, saved_clip, embed_dim, token_dim, strict_clip)
    mapper = Mapper.from_config(cfg, embed_dim, token_dim)
    mapper.load_state_dict(state)
    return mapper.to(clip.device).eval()
