"""SEARLE (Baldrati et al., ICCV 2023): phi distilled from OTI tokens of unlabeled images, CLIP frozen.

Training, as miccunifi/SEARLE (`src/oti_inversion.py`, then `src/train_phi.py`):
  1. concepts and their phrases (concepts.py: an offline substitute, a named deviation), and each
     image's concepts ranked by CLIP;
  2. OTI of every training image (oti.py) -> target tokens [N, W], kept so a stopped run resumes;
  3. phi(unnormalised image embedding) -> token [B, W]; loss =
        lambda_distil x distillation(OTI tokens, phi's tokens)
      + lambda_reg x mean(1 - cos(phrase, phrase with every occurrence of its concept -> `*`, phi's token
                                   at the first `*` only, the later ones the literal `*` word, as the original)),
     the concept drawn uniformly among the image's top `top_k`, the phrase among the concept's.
The distillation loss is the original's symmetric contrastive loss (`utils.contrastive_loss`):
the 2B normalised tokens of both sets, each with its partner as the positive and the other 2B - 1
as candidates, at temperature 0.25. At query time phi maps the reference image's unnormalised
embedding and the benchmark's own prompt is composed, exactly as for Pic2Word and LinCIR.

Where the original inverts ImageNet's 100,000 test images, this inverts a random subset of the
Pic2Word training list of the same size (`searle.oti_images`), so every method learns from the
same unlabeled images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import run_text_tower
from p2w_lib.core.config import validate
from p2w_lib.methods.phi import Phi
from p2w_lib.methods.phi_runs import PhiResult, PhiRun, phi_shape
from p2w_lib.methods.searle.concepts import (
    ConceptPhrases,
    concept_embeddings,
    top_concepts,
)
from p2w_lib.methods.searle.config import SEARLEConfig
from p2w_lib.methods.searle.oti import invert
from p2w_lib.training.loop import Loop, StepLog, step_generator
from p2w_lib.training.provenance import code_fingerprint
from p2w_lib.training.schedule import batch_indices
from p2w_lib.training.state import list_id

OTI_NAME = "oti_tokens.pt"


def distillation_loss(targets: torch.Tensor, predicted: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric contrastive loss between two sets of B tokens [B, W] (SEARLE's distillation)."""
    z = F.normalize(torch.cat([targets, predicted]).float(), dim=-1)  # [2B, W]
    sims = (z @ z.T / temperature).fill_diagonal_(float("-inf"))  # [2B, 2B]: a token is not its own candidate
    b = targets.shape[0]
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)  # [2B]
    return F.cross_entropy(sims, partner)


def draw_phrases(concepts_of: torch.Tensor, phrases: ConceptPhrases, gen: torch.Generator) -> torch.Tensor:
    """A phrase row per image [B]: a concept uniform among its top k [B, k], then one of that concept's phrases."""
    pick = torch.randint(concepts_of.shape[1], (concepts_of.shape[0],), generator=gen)  # [B]
    concept = concepts_of[torch.arange(concepts_of.shape[0]), pick]  # [B]
    return phrases.offset[concept] + (torch.rand(concept.shape, generator=gen) * phrases.count[concept]).long()


@dataclass(frozen=True)
class PhiLoss:
    total: torch.Tensor
    distil: float
    reg: float


def searle_phi_loss(
    clip: FrozenClip,
    phi: Phi,
    feats: torch.Tensor,
    oti_tokens: torch.Tensor,
    phrase_rows: torch.Tensor,
    phrases: ConceptPhrases,
    cfg: SEARLEConfig,
) -> PhiLoss:
    """phi's loss on image embeddings [B, D] with their OTI tokens [B, W] and drawn phrases [B]."""
    tokens = phi(feats)  # [B, W]
    distil = distillation_loss(oti_tokens.to(tokens.device), tokens, cfg.temperature)
    every, r = phrases.every, phrase_rows
    masked = run_text_tower(
        clip.model, every.ids[r], every.pool_pos[r], (every.star[r], tokens), normalize=False
    )  # [B, D]
    reg = (1 - F.cosine_similarity(masked, phrases.targets[r].to(masked.device), dim=-1)).mean()
    return PhiLoss(cfg.lambda_distil * distil + cfg.lambda_reg * reg, distil.item(), reg.item())


@dataclass
class SEARLEResult(PhiResult):
    oti_tokens: Path  # the OTI tokens phi was distilled from [N, W]


def train_searle(
    clip: FrozenClip,
    image_feats: torch.Tensor,
    paths: Sequence[str],
    phrases: ConceptPhrases,
    cfg: SEARLEConfig,
    out_dir: str | Path,
    until_step: int | None = None,
    restart_on_change: bool = False,
) -> SEARLEResult:
    """OTI of the images `paths` (unnormalised embeddings [N, D]), then phi distilled from the tokens;
    the tokens, phi's checkpoint and its loss log go to `out_dir`, and both stages resume.

    restart_on_change: a checkpoint of other settings, CLIP, images or code is deleted and training
    starts over (the pipeline); by default it is an error, so a direct call never discards a run.
    """
    validate(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = image_feats.shape[0]
    if n != len(paths) or n < cfg.batch_size:
        raise ValueError(
            f"{n} image embeddings for {len(paths)} paths and a batch of {cfg.batch_size}; give one "
            "embedding per path, and at least searle.batch_size of them"
        )
    data_id, code_id = list_id([*paths, "\0", *phrases.phrases]), code_fingerprint(__name__)
    concept_feats = concept_embeddings(clip, phrases.concepts)  # [V, D]
    identity = {"data": data_id, "clip": clip.identity.fingerprint, "code": code_id}
    oti_tokens = invert(
        clip,
        image_feats,
        top_concepts(image_feats, concept_feats, cfg.oti_top_k),
        phrases,
        cfg,
        cfg.seed,
        out_dir / OTI_NAME,
        identity,
    )  # [N, W]
    concepts_of = top_concepts(image_feats, concept_feats, cfg.top_k)  # [N, k]

    torch.manual_seed(cfg.seed)  # phi's initialisation and its dropout
    phi = Phi(phi_shape(clip, cfg)).to(clip.device)
    opt = torch.optim.AdamW(phi.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = PhiRun("searle", clip, cfg, data_id, code_id, out_dir)
    start = run.start(phi, opt, restart_on_change)
    stop = cfg.steps if until_step is None else min(cfg.steps, until_step)

    def step(i: int) -> StepLog:
        rows = batch_indices(i, n, cfg.batch_size, cfg.seed)  # [B]
        gen = step_generator(cfg.seed, i)
        loss = searle_phi_loss(
            clip,
            phi,
            image_feats[rows].to(clip.device),
            oti_tokens[rows],
            draw_phrases(concepts_of[rows], phrases, gen),
            phrases,
            cfg,
        )
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
        value = loss.total.item()
        return StepLog((i * cfg.batch_size // n, f"{value:.6f}", f"{loss.distil:.6f}", f"{loss.reg:.6f}"), value)

    phi.train()
    loop = Loop(
        run.log,
        ("epoch", "loss", "distil", "reg"),
        cfg.steps,
        "training SEARLE phi",
        cfg.checkpoint_every,
        cfg.log_every,
    )
    loss = loop.run(
        start, stop, opt, lambda i: cfg.lr, step, lambda i: run.save(phi, i, opt)
    )  # constant lr, as the original
    if stop > start or not run.checkpoint.exists():
        run.save(phi, stop, opt)
    phi.eval()
    return SEARLEResult(
        phi=phi, steps=stop, last_loss=loss, checkpoint=run.checkpoint, log_csv=run.log, oti_tokens=out_dir / OTI_NAME
    )
