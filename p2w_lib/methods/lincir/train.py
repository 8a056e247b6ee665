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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import (
    PLACEHOLDER,
    placeholder_token_id,
    pool_positions,
    run_text_tower,
    text_tower,
    warn_if_truncated,
)
from p2w_lib.clip.features import caption_embeddings
from p2w_lib.core.config import validate
from p2w_lib.methods.lincir.config import LinCIRConfig
from p2w_lib.methods.lincir.keywords import mask_keywords
from p2w_lib.methods.phi import Phi
from p2w_lib.methods.phi_runs import PhiResult, PhiRun, phi_shape
from p2w_lib.training.loop import Loop, StepLog, step_generator
from p2w_lib.training.provenance import code_fingerprint
from p2w_lib.training.schedule import batch_indices
from p2w_lib.training.state import list_id


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


def lincir_loss(
    clip: FrozenClip,
    phi: Phi,
    targets: torch.Tensor,
    inputs: torch.Tensor,
    ids: torch.Tensor,
    star: torch.Tensor,
    pool_pos: torch.Tensor,
) -> torch.Tensor:
    """MSE between the masked captions' embeddings (phi(inputs) at every `*`) and `targets` [B, D]."""
    tokens = phi(inputs)  # [B, W]
    composed = run_text_tower(clip.model, ids, pool_pos, (star, tokens), normalize=False)  # [B, D]
    return F.mse_loss(composed.float(), targets.float())


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


def train_lincir(
    clip: FrozenClip,
    captions: Sequence[str],
    cfg: LinCIRConfig,
    out_dir: str | Path,
    until_step: int | None = None,
    restart_on_change: bool = False,
) -> PhiResult:
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
    run = PhiRun("lincir", clip, cfg, list_id(captions), code_fingerprint(__name__), out_dir)
    start = run.start(phi, opt, restart_on_change)
    stop = cfg.steps if until_step is None else min(cfg.steps, until_step)

    def step(i: int) -> StepLog:
        rows = sample_rows[batch_indices(i, len(captions), cfg.batch_size, cfg.seed)]  # [B]
        noise = step_generator(cfg.seed, i)
        e = targets[rows].to(clip.device)  # [B, D]
        loss = lincir_loss(
            clip, phi, e, noisy(e, cfg.noise_scale, noise), masked.ids[rows], masked.star[rows], masked.pool_pos[rows]
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        return StepLog((i * cfg.batch_size // len(captions), f"{value:.6f}"), value)

    phi.train()
    loop = Loop(run.log, ("epoch", "loss"), cfg.steps, "training LinCIR phi", cfg.checkpoint_every, cfg.log_every)
    loss = loop.run(start, stop, opt, lambda i: lr_at(i, cfg), step, lambda i: run.save(phi, i, opt))
    if stop > start or not run.checkpoint.exists():
        run.save(phi, stop, opt)
    phi.eval()
    return PhiResult(phi=phi, steps=stop, last_loss=loss, checkpoint=run.checkpoint, log_csv=run.log)
