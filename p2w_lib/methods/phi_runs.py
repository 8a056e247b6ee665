"""Training runs of phi, the network LinCIR and SEARLE share (phi.py): the checkpoint a run writes,
resuming it, and loading a trained phi (ours, or an official `{"Phi": state_dict}` release).

Our checkpoint (a dict, saved atomically):
    {"format": "p2w_lib.phi/1", "method": "lincir" | "searle", "phi": state_dict, "phi_shape": {...},
     "clip": ClipIdentity dict, "train": the method's config, "step": int, "data": id, "code": id,
     "optimizer": ..., "rng": ...}
A run resumes only from a checkpoint of the same method, settings (bar those in RESUME_FREE),
CLIP, training data and training code; anything else is another run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.core.config import to_dict
from p2w_lib.core.files import atomic_torch_save
from p2w_lib.methods.phi import Phi, PhiShape, shape_of_state
from p2w_lib.training.checkpoint import CheckpointError, check_fits, read_checkpoint
from p2w_lib.training.state import rng_state, set_rng_state

log = logging.getLogger(__name__)

FORMAT = "p2w_lib.phi/1"
CHECKPOINT_NAME = "phi.pt"
LOG_NAME = "train_log.csv"
RESUME_FREE = frozenset({"enabled", "checkpoint_every", "log_every"})  # settings a run may change and still resume


def phi_shape(clip: FrozenClip, cfg: Any) -> PhiShape:
    """phi for `clip` as both methods build it: hidden = cfg.hidden_mult x the embedding width."""
    return PhiShape(clip.embed_dim, cfg.hidden_mult * clip.embed_dim, clip.token_dim, cfg.dropout)


@dataclass
class PhiResult:
    """A finished (or stopped) phi training run."""

    phi: Phi
    steps: int
    last_loss: float
    checkpoint: Path
    log_csv: Path


class StalePhiCheckpoint(CheckpointError):
    """A phi checkpoint of another run: other method, settings, CLIP, data or code."""


@dataclass(frozen=True)
class PhiRun:
    """One training run of a phi: where it lives and what makes it this run and no other."""

    method: str
    clip: FrozenClip
    cfg: Any  # the method's config dataclass (LinCIRConfig, SEARLEConfig)
    data_id: str
    code_id: str
    out_dir: Path

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    @property
    def log(self) -> Path:
        return self.out_dir / LOG_NAME

    def save(self, phi: Phi, step: int, optimizer: torch.optim.Optimizer) -> None:
        atomic_torch_save(
            {
                "format": FORMAT,
                "method": self.method,
                "phi": {k: v.detach().cpu() for k, v in phi.state_dict().items()},
                "phi_shape": vars(phi.shape),
                "clip": self.clip.identity.to_dict(),
                "train": to_dict(self.cfg),
                "step": step,
                "total_steps": self.cfg.steps,
                "data": self.data_id,
                "code": self.code_id,
                "optimizer": optimizer.state_dict(),
                "rng": rng_state(),
            },
            self.checkpoint,
        )

    def _changes(self, ckpt: dict) -> set[str]:
        saved = {k: v for k, v in ckpt["train"].items() if k not in RESUME_FREE}
        changed = {k for k, v in to_dict(self.cfg).items() if k not in RESUME_FREE and saved.get(k) != v}
        for name, ours, theirs in (
            ("method", self.method, ckpt.get("method")),
            ("clip", self.clip.identity.fingerprint, ckpt["clip"]["fingerprint"]),
            ("training data", self.data_id, ckpt.get("data")),
            ("training code", self.code_id, ckpt.get("code")),
        ):
            if ours != theirs:
                changed.add(name)
        return changed

    def _resume(self, phi: Phi, optimizer: torch.optim.Optimizer) -> int:
        ckpt = read_checkpoint(self.checkpoint, f"{self.method} checkpoint")
        if ckpt.get("format") != FORMAT or "optimizer" not in ckpt:
            raise CheckpointError(
                f"{self.checkpoint}: not a resumable phi training checkpoint; delete it or use another folder"
            )
        changed = self._changes(ckpt)
        if changed:
            raise StalePhiCheckpoint(
                f"{self.checkpoint}: cannot resume, these differ from the checkpoint's: {sorted(changed)}"
            )
        phi.load_state_dict(ckpt["phi"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        return int(ckpt["step"])

    def start(self, phi: Phi, optimizer: torch.optim.Optimizer, restart_on_change: bool) -> int:
        """The step to start from: 0, or the checkpoint's when it is of this run (a stale one raises,
        or is deleted with its log when `restart_on_change`)."""
        if not self.checkpoint.exists():
            return 0
        try:
            return self._resume(phi, optimizer)
        except StalePhiCheckpoint as err:
            if not restart_on_change:
                raise
            log.warning("%s; starting over", err)
            self.checkpoint.unlink()
            self.log.unlink(missing_ok=True)
            return 0


def load_phi(path: str | Path, clip: FrozenClip, strict_clip: bool = True) -> Phi:
    """A trained phi for `clip`, in eval mode: ours (LinCIR's or SEARLE's), or an official SEARLE or
    LinCIR release (`{"Phi": state_dict}`, which names no CLIP: only its widths are checked)."""
    path = Path(path)
    ckpt = read_checkpoint(
        path,
        "phi checkpoint",
        "train it first (`make reproduce`), or name a released phi "
        "file in params.yaml (eval.lincir_checkpoint, eval.searle_checkpoint)",
    )
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        shape, state, saved_clip = PhiShape(**ckpt["phi_shape"]), ckpt["phi"], ckpt["clip"]
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("Phi"), dict):
        state, saved_clip = {k.removeprefix("module."): v for k, v in ckpt["Phi"].items()}, None
        try:
            shape = shape_of_state(state)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err
    else:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: unknown checkpoint format (top-level keys {keys}); expected a p2w_lib phi "
            "checkpoint or an official SEARLE/LinCIR file with a 'Phi' state dict"
        )
    check_fits(path, clip, saved_clip, shape.input_dim, shape.output_dim, strict_clip, network="phi")
    phi = Phi(shape)
    phi.load_state_dict(state)
    return phi.to(clip.device).eval()
