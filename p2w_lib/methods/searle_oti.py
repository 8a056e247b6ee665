"""SEARLE-OTI: SEARLE's textual inversion run on each query's reference image at test time, in
place of a trained network (Baldrati et al., ICCV 2023; miccunifi/SEARLE `src/oti_inversion.py`
run on the benchmark's reference images).

`OTIQueryTokens` stands where a method's network stands: image embeddings [B, D] in, pseudo tokens
[B, W] out, so every protocol composes its own prompt with them exactly as for phi. Each distinct
reference image is inverted once per evaluation (a benchmark lists an image in several queries);
the images new to a call are inverted in batches of `oti_batch_size` in order of first appearance,
each batch's draws seeded by (seed, batch number), so an evaluation is reproducible.

The inversion costs minutes, so the pipelines run it in a stage of its own (`searle_oti`): that
stage runs the benchmarks' protocols in order with one `OTIQueryTokens` and SEARLE-OTI alone, and
saves every token in a store (`save`); the evaluation stages start from it (`load`) and invert
nothing, so they score what that one object, inverting as it went, would have scored.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import encode_composed_tokens, tokenize_prompts
from p2w_lib.core.files import atomic_torch_save
from p2w_lib.methods.base import NetworkInputs, QueryMethod, Training, pseudo_token
from p2w_lib.methods.searle import phrases_for
from p2w_lib.methods.searle.concepts import (
    ConceptPhrases,
    concept_embeddings,
    top_concepts,
)
from p2w_lib.methods.searle.config import SEARLEConfig
from p2w_lib.methods.searle.oti import invert_batches, settings, template_tokens
from p2w_lib.training.checkpoint import CheckpointError, read_checkpoint
from p2w_lib.training.provenance import code_fingerprint
from p2w_lib.training.state import list_id

log = logging.getLogger(__name__)

STORE_FORMAT = "p2w_lib.oti_queries/1"


class OTIQueryTokens(nn.Module):
    """Pseudo tokens by OTI of each image embedding it is given (no parameters: nothing is trained)."""

    def __init__(self, clip: FrozenClip, phrases: ConceptPhrases, cfg: SEARLEConfig, seed: int):
        super().__init__()
        self.clip, self.phrases, self.cfg, self.seed = clip, phrases, cfg, seed
        self.concept_feats = concept_embeddings(clip, phrases.concepts)  # [V, D]
        self.templates = template_tokens(clip)
        self.tokens: dict[bytes, torch.Tensor] = {}  # an image embedding's bytes -> its token [W]
        self.batches = 0
        self.store: Path | None = None  # the store loaded, if any: an image missing from it is reported

    @cached_property
    def identity(self) -> dict:
        """What the tokens depend on besides the images: the CLIP, the settings and seed, the concept
        phrases and the code (all fixed at construction, so hashed once)."""
        return {
            "clip": self.clip.identity.to_dict(),
            "settings": settings(self.cfg, self.seed),
            "phrases": list_id(self.phrases.phrases),
            "code": code_fingerprint(__name__),
        }

    def save(self, path: str | Path) -> None:
        """Every token so far, keyed by its image embedding, with its identity; atomically."""
        feats = [torch.from_numpy(np.frombuffer(key, dtype=np.float32).copy()) for key in self.tokens]
        images = torch.stack(feats) if feats else torch.empty(0, self.clip.embed_dim)  # [N, D]
        tokens = (
            torch.stack(list(self.tokens.values())).cpu() if feats else torch.empty(0, self.clip.token_dim)
        )  # [N, W]
        atomic_torch_save(
            {"format": STORE_FORMAT, **self.identity, "batches": self.batches, "images": images, "tokens": tokens}, path
        )

    def load(self, path: str | Path, report_misses: bool = True) -> int:
        """Start from the tokens of a store `save` wrote (the number read). A store of another
        identity (CLIP, settings, seed, phrases, code) is refused: its tokens would not be these.
        report_misses: warn when an image must still be inverted (an evaluation expects none)."""
        path = Path(path)
        saved = read_checkpoint(path, "SEARLE-OTI token store", "run the searle_oti stage (`dvc repro searle_oti`)")
        if saved.get("format") != STORE_FORMAT or {k: saved.get(k) for k in self.identity} != self.identity:
            raise CheckpointError(
                f"{path}: SEARLE-OTI tokens made with another CLIP, other `searle` settings, seed, concept phrases "
                "or code than this evaluation's; re-run the searle_oti stage (`dvc repro searle_oti`, or its "
                "notebook 03_searle_oti) to invert the query images again."
            )
        self.tokens.update(zip((row.numpy().tobytes() for row in saved["images"].float()), saved["tokens"]))
        self.batches, self.store = int(saved["batches"]), path if report_misses else None
        return len(saved["tokens"])

    def forward(self, image_feats: torch.Tensor) -> torch.Tensor:
        feats = image_feats.detach().float().cpu()  # [B, D]
        keys = [row.numpy().tobytes() for row in feats]
        fresh: dict[bytes, int] = {}  # images not inverted yet -> their first row here
        for i, key in enumerate(keys):
            if key not in self.tokens:
                fresh.setdefault(key, i)
        self._invert(feats[list(fresh.values())], list(fresh))
        return torch.stack([self.tokens[k] for k in keys]).to(image_feats.device)  # [B, W]

    def _invert(self, feats: torch.Tensor, keys: list[bytes]) -> None:
        if not keys:
            return
        if self.store is not None:
            log.warning(
                "%d query images are not in %s (the searle_oti stage writes it for the benchmarks' query "
                "images); inverting them now",
                len(keys),
                self.store,
            )
        concepts_of = top_concepts(feats, self.concept_feats, self.cfg.oti_top_k)  # [N, k]
        batches = invert_batches(
            self.clip, feats, concepts_of, self.phrases, self.templates, self.cfg, self.seed, first_batch=self.batches
        )
        done = 0
        # One bar per call: a protocol composes one domain or category at a time.
        with (
            tqdm(total=len(keys), desc="OTI of the query images (SEARLE-OTI)", unit="img") as bar,
            torch.enable_grad(),
        ):  # the protocols compose queries under no_grad; OTI optimises
            for tokens in batches:  # [b, W]
                self.tokens.update(zip(keys[done : done + len(tokens)], tokens))
                done += len(tokens)
                self.batches += 1
                bar.update(len(tokens))


@torch.no_grad()
def own_image_first(
    clip: FrozenClip, images: torch.Tensor, tokens: torch.Tensor, prompt: str = "a photo of *", batch_size: int = 256
) -> float:
    """% of tokens [N, W] whose prompt, composed with the token, ranks the token's own image first
    among the N images [N, D]. OTI fits each token to its image, so this sits far above chance
    (100 / N %): a check that a store holds each image's own token."""
    gallery = torch.nn.functional.normalize(images.float(), dim=-1).to(clip.device)  # [N, D]
    hits = 0
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start : start + batch_size].to(clip.device)  # [b, W]
        text = tokenize_prompts(clip.model, clip.tokenizer, [prompt] * len(batch))
        queries = encode_composed_tokens(clip.model, text, batch)  # [b, D], normalised
        first = (queries.float() @ gallery.T).argmax(dim=1).cpu()  # [b]
        hits += int((first == torch.arange(start, start + len(batch))).sum())
    return 100.0 * hits / max(len(tokens), 1)


STORE_NAME = "query_tokens.pt"  # in models/<profile>/searle_oti/seed<N>/, written by the searle_oti stage


def query_tokens(clip: FrozenClip, captions, cfg: SEARLEConfig, seed: int) -> OTIQueryTokens:
    """SEARLE-OTI's stand-in network: OTI of each reference image it is given, with SEARLE's settings
    and the concepts of the training captions."""
    return OTIQueryTokens(clip, phrases_for(clip, captions, cfg), replace(cfg, seed=seed), seed)


def _network(x: NetworkInputs) -> OTIQueryTokens:
    tokens = query_tokens(x.clip, x.captions(), x.settings["searle"], x.seed)
    store = x.model_dir / STORE_NAME
    if store.is_file():
        tokens.load(store)
    else:  # stepping through an evaluation notebook by hand before the stage ran: slow, not wrong
        log.warning(
            "%s does not exist (the searle_oti stage writes it): SEARLE-OTI inverts the query "
            "images during this evaluation",
            store,
        )
    return tokens


# No network is trained: the stage inverts the benchmarks' query images into the store.
METHOD = QueryMethod(
    "searle_oti",
    "SEARLE-OTI",
    "oti",
    pseudo_token("searle_oti"),
    "#8d6e63",
    training=Training(
        sections={"searle": SEARLEConfig},
        folder="searle_oti",
        network=_network,
        stage="searle_oti",
        notebook="03_searle_oti",
        switch="eval.searle_oti",
    ),
    protocol="searle",  # its published numbers are under SEARLE's prompts (protocols/common.py)
)
