"""The frozen CLIP backbone: one factory over open_clip, and the identity that caches and
checkpoints are keyed by.

CLIP never trains in Pic2Word, so `load_clip` returns it in eval mode with every parameter's
`requires_grad` off; gradients still flow *through* the text tower to the pseudo token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from p2w_lib.clip.composed import text_tower, warn_if_truncated
from p2w_lib.clip.weights import require_weights
from p2w_lib.core.config import ClipConfig, ConfigError
from p2w_lib.core.files import atomic_torch_save, atomic_write_text

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipIdentity:
    """What a cached embedding or a trained mapper depends on.

    `fingerprint` hashes every parameter and buffer, so two loads agree exactly when the
    weights do (a retrained demo CLIP at the same path gets a new fingerprint).
    """

    model: str
    pretrained: str | None
    embed_dim: int
    token_dim: int
    fingerprint: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class FrozenClip:
    """A frozen open_clip model with its preprocessing, tokenizer and identity."""

    model: nn.Module
    preprocess: Callable
    tokenizer: Callable
    identity: ClipIdentity
    device: torch.device

    @property
    def embed_dim(self) -> int:
        return self.identity.embed_dim

    @property
    def token_dim(self) -> int:
        return self.identity.token_dim

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.detach().exp()

    def _autocast(self):
        # Mixed precision on CUDA only; CPU stays in float32 for exactness.
        enabled = self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Image embeddings [B, D]; unnormalised by default because the mapper eats those."""
        with self._autocast():
            feats = self.model.encode_image(images.to(self.device)).float()  # [B, D]
        return F.normalize(feats, dim=-1) if normalize else feats

    @torch.no_grad()
    def encode_text(self, texts: list[str], normalize: bool = False) -> torch.Tensor:
        """Plain text embeddings [B, D] for a list of strings."""

        tokens = self.tokenizer(texts)  # [B, L]
        warn_if_truncated(self.tokenizer, list(texts), tokens)
        tokens = tokens.to(self.device)
        with self._autocast():
            feats = self.model.encode_text(tokens).float()  # [B, D]
        return F.normalize(feats, dim=-1) if normalize else feats


def resolve_model_name(model: str) -> str:
    """Map a shipped config name (`p2w-tiny`) or a folder to open_clip's `local-dir:` form."""
    if model.startswith(("local-dir:", "hf-hub:")):
        return model
    shipped = MODEL_CONFIG_DIR / model
    if (shipped / "open_clip_config.json").is_file():
        return f"local-dir:{shipped}"
    if (Path(model) / "open_clip_config.json").is_file():
        return f"local-dir:{Path(model).resolve()}"
    return model


def _check_model_source(name: str, cfg: ClipConfig) -> None:
    """Fail fast, with the fix, before open_clip raises from deep inside its factory."""
    import open_clip

    if name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:") :])
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(
                f"CLIP folder {folder} has no open_clip_config.json: expected a folder written by "
                "p2w_lib.clip.backbone.save_clip (config + weights) or an open_clip local-dir."
            )
        return
    if name.startswith("hf-hub:"):
        return
    if name.replace("/", "-") not in open_clip.list_models():
        raise ConfigError(
            f"clip.model={cfg.model!r} is neither an open_clip model name, a folder with "
            f"open_clip_config.json, nor a shipped config ({sorted(p.name for p in MODEL_CONFIG_DIR.iterdir())})."
        )
    if cfg.pretrained and not os.path.isfile(cfg.pretrained):
        tags = open_clip.list_pretrained_tags_by_model(name)
        if cfg.pretrained not in tags:
            raise ConfigError(
                f"clip.pretrained={cfg.pretrained!r} is neither a file nor a known tag of {name} (known tags: {tags})."
            )
        require_weights(name, cfg.pretrained, cfg.cache_dir)  # fail in a second, not after a retry storm


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over every named parameter and buffer (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_clip(cfg: ClipConfig) -> FrozenClip:
    """Load a frozen CLIP: open_clip name + tag/file, a shipped config, or a saved folder.

    With no weights (`pretrained=None`, or a config folder without weights) the model is
    randomly initialised under `torch.manual_seed(cfg.init_seed)`, so tests are repeatable.
    """
    import open_clip

    name = resolve_model_name(cfg.model)
    _check_model_source(name, cfg)
    device = torch.device(cfg.device)
    pretrained = None if name.startswith(("local-dir:", "hf-hub:")) else cfg.pretrained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, precision=cfg.precision, device=device, cache_dir=cfg.cache_dir
        )
    tokenizer = open_clip.get_tokenizer(name)
    _freeze(model)
    token_dim = text_tower(model).token_embedding.weight.shape[1]  # width W of the pseudo token
    with torch.no_grad():
        embed_dim = int(model.encode_text(tokenizer(["a photo"]).to(device)).shape[-1])
    identity = ClipIdentity(
        model=cfg.model,
        pretrained=cfg.pretrained if pretrained else None,
        embed_dim=embed_dim,
        token_dim=int(token_dim),
        fingerprint=weights_fingerprint(model),
    )
    return FrozenClip(model=model, preprocess=preprocess, tokenizer=tokenizer, identity=identity, device=device)


def save_clip(model: nn.Module, model_cfg: dict, preprocess_cfg: dict, folder: str | Path) -> Path:
    """Write an open_clip `local-dir:` folder (config + weights) that `load_clip` reads back."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    atomic_torch_save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    atomic_write_text(folder / "open_clip_config.json", json.dumps(config, indent=2) + "\n")
    return folder


def read_model_config(model: str) -> dict:
    """The `{model_cfg, preprocess_cfg}` JSON behind a shipped config name or a folder."""
    name = resolve_model_name(model)
    if not name.startswith("local-dir:"):
        raise ConfigError(f"{model!r} is not a config folder; builtin open_clip names have no local JSON.")
    path = Path(name[len("local-dir:") :]) / "open_clip_config.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: malformed JSON ({err}); fix or regenerate the file.") from err
