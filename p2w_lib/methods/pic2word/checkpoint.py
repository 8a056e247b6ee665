"""Pic2Word mapper checkpoints that carry their own config and the identity of the CLIP they were trained on.

Our format (a dict, saved atomically):
    {"format": "p2w_lib.mapper/1", "mapper": state_dict, "mapper_config": {...},
     "clip": ClipIdentity dict, "train": {...}, "step": int, ...training state for resume}
The official Pic2Word format is also read: `state_dict_img2text`, possibly `module.`-prefixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from p2w_lib.clip.backbone import ClipIdentity, FrozenClip
from p2w_lib.core.config import from_dict, to_dict
from p2w_lib.core.files import atomic_torch_save
from p2w_lib.methods.pic2word.config import MapperConfig
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.training.checkpoint import CheckpointError, check_fits, read_checkpoint

FORMAT = "p2w_lib.mapper/1"


def save_mapper_checkpoint(
    path: str | Path, mapper: Mapper, mapper_cfg: MapperConfig, clip: ClipIdentity, **extra: Any
) -> None:
    payload = {
        "format": FORMAT,
        "mapper": {k: v.detach().cpu() for k, v in mapper.state_dict().items()},
        "mapper_config": to_dict(mapper_cfg),
        "clip": clip.to_dict(),
        **extra,
    }
    atomic_torch_save(payload, path)


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def _infer_official_config(state: dict[str, torch.Tensor]) -> tuple[MapperConfig, int, int]:
    """Recover (config, embed_dim, token_dim) from IM2TEXT weight shapes."""
    n_layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    if n_layers == 0 or "fc_out.weight" not in state:
        raise CheckpointError(f"not an IM2TEXT state dict (keys: {sorted(state)[:6]} ...)")
    embed_dim = state["layers.0.0.weight"].shape[1]
    hidden_dim, token_dim = state["fc_out.weight"].shape[1], state["fc_out.weight"].shape[0]
    return MapperConfig(hidden_dim=hidden_dim, n_layers=n_layers), embed_dim, token_dim


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
