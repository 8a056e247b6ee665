"""LinCIR (Gu et al., CVPR 2024): phi trained from captions alone, with CLIP frozen.

One step, as navervision/lincir `train_phi.py`:
    caption -> CLIP text embedding e [B, D] (unnormalised)
    phi(e + U(0, 1) x N(0, I)) -> pseudo token t [B, W]   (the noise stands in for the image-text gap)
    masked caption ("$ of $ that has $", keywords.py) with t at every `$` -> embedding e' [B, D]
    loss = MSE(e', e)
Images are never read. At query time phi maps the reference image's unnormalised embedding to the
token and the prompt is composed as Pic2Word's is (the benchmark's own prompt, `*` for `$`).

Because CLIP is frozen, e and the masked tokens of each distinct caption are computed once.
The data order and the noise are pure functions of (seed, step) and the checkpoint carries the
dropout RNG, so a resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import CheckpointError, read_checkpoint
from .clip_backbone import FrozenClip
from .composed import (
    PLACEHOLDER, placeholder_token_id, pool_positions, run_text_tower, run_text_tower_bucketed, text_tower, warn_if_truncated,
)
from .config import LinCIRConfig, to_dict, validate
from .io_utils import atomic_torch_save
from .keywords import mask_keywords
from .loop import Loop, StepLog
from .phi import Phi, PhiShape, shape_of_state
from .provenance import LINCIR_TRAINING, code_fingerprint
from .train import batch_indices, list_id, rng_state, set_rng_state

log = logging.getLogger(__name__)

FORMAT = "p2w_lib.phi/1"
CHECKPOINT_NAME = "phi.pt"
LOG_NAME = "train_log.csv"
_RESUME_FREE = {"enabled", "checkpoint_every", "log_every"}


@dataclass(frozen=True)
class MaskedCaptions:
    """Distinct captions, their masked token ids and where the pseudo token goes."""

    ids: torch.Tensor  # [N, L] masked captions
    star: torch.Tensor  # [N, L] bool: positions that take the pseudo token
    pool_pos: torch.Tensor  # [N] end-of-text positions


def tokenize_masked(clip: FrozenClip, masked: Sequence[str]) -> MaskedCaptions:
    """Tokenise masked captions; one whose every `*` fell past the context becomes `a photo of *`
    (the original's fallback when no `$` survives tokenisation)."""
    masked = list(masked)
    ids = clip.tokenizer(masked)  # [N, L]
    warn_if_truncated(clip.tokenizer, masked, ids)
    star_id = placeholder_token_id(clip.tokenizer)
    lost = (ids == star_id).sum(dim=1) == 0
    if lost.any():
        ids[lost] = clip.tokenizer([f"a photo of {PLACEHOLDER}"] * int(lost.sum()))
    return MaskedCaptions(ids, ids == star_id, pool_positions(ids, text_tower(clip.model)))


def noisy(embeddings: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """e + s x u x n with u ~ U(0, 1) per sample and n ~ N(0, I): LinCIR's input noise. [B, D]"""
    u = torch.rand(embeddings.shape[0], 1, generator=generator)  # [B, 1]
    n = torch.randn(embeddings.shape, generator=generator)  # [B, D]
    return embeddings + scale * (u * n).to(embeddings.device, embeddings.dtype)


def lincir_loss(clip: FrozenClip, phi: Phi, targets: torch.Tensor, inputs: torch.Tensor, ids: torch.Tensor,
                star: torch.Tensor, pool_pos: torch.Tensor) -> torch.Tensor:
    """MSE between the masked captions' embeddings (phi(inputs) at every `*`) and `targets` [B, D]."""
    tokens = phi(inputs)  # [B, W]
    composed = run_text_tower(clip.model, ids, pool_pos, (star, tokens), normalize=False)  # [B, D]
    return F.mse_loss(composed.float(), targets.float())


@torch.no_grad()
def caption_embeddings(clip: FrozenClip, captions: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    """Unnormalised text embeddings [N, D] (LinCIR's targets and phi's clean inputs); each batch runs
    only up to its longest caption (exact, composed.run_text_tower_bucketed)."""
    tower = text_tower(clip.model)
    out = []
    for i in tqdm(range(0, len(captions), batch_size), desc="embedding captions", unit="batch", leave=False):
        ids = clip.tokenizer(list(captions[i:i + batch_size]))  # [B, L]
        out.append(run_text_tower_bucketed(clip.model, ids, pool_positions(ids, tower), normalize=False).float().cpu())
    return torch.cat(out)  # [N, D]


@dataclass
class LinCIRResult:
    phi: Phi
    steps: int
    last_loss: float
    checkpoint: Path
    log_csv: Path


def phi_shape(clip: FrozenClip, cfg: LinCIRConfig) -> PhiShape:
    return PhiShape(clip.embed_dim, cfg.hidden_mult * clip.embed_dim, clip.token_dim, cfg.dropout)


def _save(path: Path, phi: Phi, clip: FrozenClip, cfg: LinCIRConfig, **state) -> None:
    atomic_torch_save({"format": FORMAT, "method": "lincir", "phi": {k: v.detach().cpu() for k, v in phi.state_dict().items()},
                       "phi_shape": vars(phi.shape), "clip": clip.identity.to_dict(), "train": to_dict(cfg), **state}, path)


def _resume(path: Path, phi: Phi, opt, clip: FrozenClip, cfg: LinCIRConfig, data_id: str, code_id: str) -> int:
    """Load the training state of `path`; a checkpoint of other settings, CLIP, captions or code raises."""
    ckpt = read_checkpoint(path)
    if ckpt.get("format") != FORMAT or "optimizer" not in ckpt:
        raise CheckpointError(f"{path}: not a resumable LinCIR training checkpoint; delete it or use another folder")
    saved = {k: v for k, v in ckpt["train"].items() if k not in _RESUME_FREE}
    changed = {k for k, v in to_dict(cfg).items() if k not in _RESUME_FREE and saved.get(k) != v}
    if ckpt["clip"]["fingerprint"] != clip.identity.fingerprint:
        changed.add("clip")
    if ckpt.get("data") != data_id:
        changed.add("captions")
    if ckpt.get("code") != code_id:
        changed.add("training code")
    if changed:
        raise StaleLinCIRCheckpoint(f"{path}: cannot resume, these differ from the checkpoint's: {sorted(changed)}")
    phi.load_state_dict(ckpt["phi"])
    opt.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"])
    return int(ckpt["step"])


class StaleLinCIRCheckpoint(CheckpointError):
    """A LinCIR checkpoint of another run: other settings, CLIP, captions or code."""


def lr_at(step: int, cfg: LinCIRConfig) -> float:
    """Linear warm-up, then constant: LinCIR's `constant_with_warmup` schedule."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


def _caption_data(clip: FrozenClip, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, MaskedCaptions]:
    """(row of each caption among the distinct ones [N], their embeddings [U, D], their masked tokens):
    CLIP is frozen, so each distinct caption is embedded and masked once."""
    unique = sorted(set(captions))
    row = {c: i for i, c in enumerate(unique)}
    sample_rows = torch.tensor([row[c] for c in captions])  # [N]
    return sample_rows, caption_embeddings(clip, unique), tokenize_masked(clip, [mask_keywords(c) for c in unique])


def _start_step(ckpt_path: Path, log_path: Path, phi: Phi, opt, clip: FrozenClip, cfg: LinCIRConfig, data_id: str,
                code_id: str, restart_on_change: bool) -> int:
    """The step to start from: 0, or the checkpoint's when it is of this run (a stale one raises, or is
    deleted with its log when `restart_on_change`)."""
    if not ckpt_path.exists():
        return 0
    try:
        return _resume(ckpt_path, phi, opt, clip, cfg, data_id, code_id)
    except StaleLinCIRCheckpoint as err:
        if not restart_on_change:
            raise
        log.warning("%s; starting over", err)
        ckpt_path.unlink()
        log_path.unlink(missing_ok=True)
        return 0


def train_lincir(clip: FrozenClip, captions: Sequence[str], cfg: LinCIRConfig, out_dir: str | Path,
                 until_step: int | None = None, restart_on_change: bool = False) -> LinCIRResult:
    """Train (or resume) LinCIR's phi on `captions`; checkpoint and loss log go to `out_dir`.

    restart_on_change: a checkpoint of other settings, CLIP, captions or code is deleted and training
    starts over (the pipeline); by default it is an error, so a direct call never discards a run.
    """
    validate(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(captions) < cfg.batch_size:
        raise ValueError(f"{len(captions)} captions but a batch of {cfg.batch_size}; lower lincir.batch_size")
    sample_rows, targets, masked = _caption_data(clip, captions)

    torch.manual_seed(cfg.seed)  # phi's initialisation and its dropout
    phi = Phi(phi_shape(clip, cfg)).to(clip.device)
    # torch's AdamW defaults (betas 0.9/0.999, eps 1e-8) and decay on every parameter, as the original.
    opt = torch.optim.AdamW(phi.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    data_id, code_id = list_id(captions), code_fingerprint(LINCIR_TRAINING)
    start = _start_step(ckpt_path, log_path, phi, opt, clip, cfg, data_id, code_id, restart_on_change)
    stop = cfg.steps if until_step is None else min(cfg.steps, until_step)

    def checkpoint(step: int) -> None:
        _save(ckpt_path, phi, clip, cfg, step=step, total_steps=cfg.steps, data=data_id, code=code_id,
              optimizer=opt.state_dict(), rng=rng_state())

    def step(i: int) -> StepLog:
        rows = sample_rows[batch_indices(i, len(captions), cfg.batch_size, cfg.seed)]  # [B]
        noise = torch.Generator().manual_seed(cfg.seed * 1_000_003 + i)
        e = targets[rows].to(clip.device)  # [B, D]
        loss = lincir_loss(clip, phi, e, noisy(e, cfg.noise_scale, noise), masked.ids[rows], masked.star[rows],
                           masked.pool_pos[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return StepLog((i * cfg.batch_size // len(captions), f"{loss.item():.6f}"), loss.item())

    phi.train()
    loop = Loop(log_path, ("epoch", "loss"), cfg.steps, "training LinCIR phi", cfg.checkpoint_every, cfg.log_every)
    loss = loop.run(start, stop, opt, lambda i: lr_at(i, cfg), step, checkpoint)
    if stop > start or not ckpt_path.exists():
        checkpoint(stop)
    phi.eval()
    return LinCIRResult(phi=phi, steps=stop, last_loss=loss, checkpoint=ckpt_path, log_csv=log_path)


def load_phi(path: str | Path, clip: FrozenClip) -> Phi:
    """A trained phi for `clip`, in eval mode: ours, or an official SEARLE/LinCIR release
    (`{"Phi": state_dict}`, which names no CLIP: only its widths are checked)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        shape, state = PhiShape(**ckpt["phi_shape"]), ckpt["phi"]
        if ckpt["clip"]["fingerprint"] != clip.identity.fingerprint:
            raise CheckpointError(f"{path}: phi was trained on CLIP {ckpt['clip'].get('model')} (weights "
                                  f"{ckpt['clip'].get('fingerprint')}), not the CLIP in use ({clip.identity.model}, "
                                  f"weights {clip.identity.fingerprint}); load the matching CLIP")
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("Phi"), dict):
        state = {k.removeprefix("module."): v for k, v in ckpt["Phi"].items()}
        try:
            shape = shape_of_state(state)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err
    else:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: unknown checkpoint format (top-level keys {keys}); expected a p2w_lib phi "
                              "checkpoint or an official SEARLE/LinCIR file with a 'Phi' state dict")
    if (shape.input_dim, shape.output_dim) != (clip.embed_dim, clip.token_dim):
        raise CheckpointError(f"{path}: phi maps {shape.input_dim}-d embeddings to {shape.output_dim}-d tokens, but the "
                              f"CLIP in use has embed_dim={clip.embed_dim}, text width={clip.token_dim}")
    phi = Phi(shape)
    phi.load_state_dict(state)
    return phi.to(clip.device).eval()
