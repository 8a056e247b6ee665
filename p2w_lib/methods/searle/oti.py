"""SEARLE's optimisation-based textual inversion (OTI): one pseudo token per image, optimised so
that CLIP reads it as that image (miccunifi/SEARLE `src/oti_inversion.py`).

For a batch of images, each step and each image:
    a template ("a sketch of a *") drawn at random, its `*` filled with the image's token -> t
    one of the phrases of the image's top concepts (flat over their phrases, as the original),
    its concept replaced by the token -> r; the phrase itself -> p (fixed)
    loss = (lambda_cos x mean(1 - cos(t, image)) + lambda_reg x mean(1 - cos(r, p))) / (lambda_cos + lambda_reg)
AdamW on the tokens only, which start at N(0, 0.02^2); the result is the tokens' exponential moving
average. Every random draw of batch b comes from a generator seeded by (seed, b), so the tokens of
a batch do not depend on which batches ran before: a resumed inversion equals an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import ComposedTokens, run_text_tower, tokenize_prompts
from p2w_lib.core.files import atomic_torch_save
from p2w_lib.methods.searle.concepts import TEMPLATES, ConceptPhrases
from p2w_lib.methods.searle.config import SEARLEConfig
from p2w_lib.training.checkpoint import read_checkpoint
from p2w_lib.training.loop import step_generator

log = logging.getLogger(__name__)

FORMAT = "p2w_lib.oti/1"
_SETTINGS = (
    "oti_steps",
    "oti_lr",
    "oti_weight_decay",
    "oti_batch_size",
    "oti_top_k",
    "oti_lambda_cos",
    "oti_lambda_reg",
    "ema_decay",
    "min_concept_count",
    "phrases_per_concept",
)


def template_tokens(clip: FrozenClip) -> ComposedTokens:
    """TEMPLATES with `*` in their slot, tokenised once [T, L]."""
    return tokenize_prompts(clip.model, clip.tokenizer, [t.format("*") for t in TEMPLATES])


@dataclass(frozen=True)
class Draw:
    """One step's random choices for a batch: a template and a concept phrase per image."""

    template: torch.Tensor  # [B] row of template_tokens
    phrase: torch.Tensor  # [B] row of ConceptPhrases


def draw(concepts_of: torch.Tensor, phrases: ConceptPhrases, n_templates: int, gen: torch.Generator) -> Draw:
    """Uniform over templates, and uniform over all phrases of each image's concepts [B, k]."""
    counts = phrases.count[concepts_of].float()  # [B, k]: a concept weighs as many phrases as it has
    concept = concepts_of.gather(1, torch.multinomial(counts, 1, generator=gen)).squeeze(1)  # [B]
    within = (torch.rand(concept.shape, generator=gen) * phrases.count[concept]).long()  # [B]
    return Draw(torch.randint(n_templates, concept.shape, generator=gen), phrases.offset[concept] + within)


def oti_loss(
    clip: FrozenClip,
    tokens: torch.Tensor,
    image_feats: torch.Tensor,
    d: Draw,
    templates: ComposedTokens,
    phrases: ConceptPhrases,
    lambda_cos: float,
    lambda_reg: float,
) -> torch.Tensor:
    """OTI's loss for tokens [B, W] of images [B, D] under the draw `d` (see the module docstring)."""
    t = d.template
    composed = run_text_tower(
        clip.model, templates.ids[t], templates.pool_pos[t], (templates.star_pos[t], tokens), normalize=False
    )  # [B, D]
    r = d.phrase
    reg = run_text_tower(
        clip.model, phrases.first.ids[r], phrases.first.pool_pos[r], (phrases.first.star[r], tokens), normalize=False
    )  # [B, D]
    device = composed.device
    cos_loss = (1 - F.cosine_similarity(composed, image_feats.to(device), dim=-1)).mean()
    reg_loss = (1 - F.cosine_similarity(reg, phrases.targets[r].to(device), dim=-1)).mean()
    return (lambda_cos * cos_loss + lambda_reg * reg_loss) / (lambda_cos + lambda_reg)


def invert_batch(
    clip: FrozenClip,
    image_feats: torch.Tensor,
    concepts_of: torch.Tensor,
    phrases: ConceptPhrases,
    templates: ComposedTokens,
    cfg: SEARLEConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """The EMA tokens [B, W] of one batch of images [B, D] with top concepts [B, k]."""
    start = torch.empty(image_feats.shape[0], clip.token_dim).normal_(0, 0.02, generator=gen)  # [B, W]
    tokens = torch.nn.Parameter(start.to(clip.device))
    ema = tokens.detach().clone()
    opt = torch.optim.AdamW([tokens], lr=cfg.oti_lr, weight_decay=cfg.oti_weight_decay)
    for _ in range(cfg.oti_steps):
        d = draw(concepts_of, phrases, templates.ids.shape[0], gen)
        loss = oti_loss(clip, tokens, image_feats, d, templates, phrases, cfg.oti_lambda_cos, cfg.oti_lambda_reg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema = cfg.ema_decay * ema + (1 - cfg.ema_decay) * tokens.detach()
    return ema.cpu()


def invert_batches(
    clip: FrozenClip,
    image_feats: torch.Tensor,
    concepts_of: torch.Tensor,
    phrases: ConceptPhrases,
    templates: ComposedTokens,
    cfg: SEARLEConfig,
    seed: int,
    first_batch: int = 0,
) -> Iterator[torch.Tensor]:
    """The EMA tokens [b, W] of images [N, D], one batch of `oti_batch_size` at a time, in order.

    Batch j's draws are seeded by (seed, first_batch + j): a resumed inversion, or a later call of
    SEARLE-OTI on new query images, continues the numbering and so draws what one long run would.
    """
    size = cfg.oti_batch_size
    for j, start in enumerate(range(0, image_feats.shape[0], size)):
        rows = slice(start, start + size)
        yield invert_batch(
            clip,
            image_feats[rows].to(clip.device),
            concepts_of[rows],
            phrases,
            templates,
            cfg,
            step_generator(seed, first_batch + j),
        )


def settings(cfg: SEARLEConfig, seed: int) -> dict:
    """What OTI's tokens depend on besides the images and the CLIP: the settings it reads, and the seed."""
    return {**{k: getattr(cfg, k) for k in _SETTINGS}, "seed": seed}


def _done_so_far(store: Path, identity: dict) -> torch.Tensor | None:
    """The tokens a stopped inversion of the same images, CLIP, settings and code already made."""
    if not store.is_file():
        return None
    saved = read_checkpoint(store, "OTI tokens")
    if saved.get("format") == FORMAT and {k: saved.get(k) for k in identity} == identity:
        return saved["tokens"]
    log.warning("%s: tokens of another inversion (other images, CLIP, settings or code); starting over", store)
    return None


def invert(
    clip: FrozenClip,
    image_feats: torch.Tensor,
    concepts_of: torch.Tensor,
    phrases: ConceptPhrases,
    cfg: SEARLEConfig,
    seed: int,
    store: Path | None = None,
    identity: dict | None = None,
    save_every: int = 8,
) -> torch.Tensor:
    """OTI tokens [N, W] (their EMA) of images [N, D] with top concepts [N, k], batch by batch.

    store: a file that keeps the finished batches (atomically, every `save_every` batches and at the
    end), so a stopped run resumes; `identity` (images, CLIP, code) must match for it to be reused.
    """
    templates = template_tokens(clip)
    ident = {**(identity or {}), "settings": settings(cfg, seed)}
    done = _done_so_far(store, ident) if store is not None else None
    parts = [done] if done is not None and len(done) else []
    size = cfg.oti_batch_size
    n_batches = -(-image_feats.shape[0] // size)
    first = -(-len(done) // size) if done is not None else 0  # stores hold whole batches (the last may be short)
    batches = invert_batches(
        clip, image_feats[first * size :], concepts_of[first * size :], phrases, templates, cfg, seed, first_batch=first
    )
    bar = tqdm(batches, desc="OTI (SEARLE)", unit="batch", initial=first, total=n_batches)
    for b, tokens in enumerate(bar, start=first):
        parts.append(tokens)
        if store is not None and ((b + 1) % save_every == 0 or b + 1 == n_batches):
            atomic_torch_save({"format": FORMAT, **ident, "tokens": torch.cat(parts)}, store)
    return torch.cat(parts) if parts else torch.empty(0, clip.token_dim)
