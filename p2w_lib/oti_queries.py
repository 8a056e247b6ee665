"""SEARLE-OTI: SEARLE's textual inversion run on each query's reference image at test time, in
place of a trained network (Baldrati et al., ICCV 2023; miccunifi/SEARLE `src/oti_inversion.py`
run on the benchmark's reference images).

`OTIQueryTokens` stands where a method's network stands: image embeddings [B, D] in, pseudo tokens
[B, W] out, so every protocol composes its own prompt with them exactly as for phi. Each distinct
reference image is inverted once per evaluation (a benchmark lists an image in several queries);
the images new to a call are inverted in batches of `oti_batch_size` in order of first appearance,
each batch's draws seeded by (seed, batch number), so an evaluation is reproducible.
"""
from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from .clip_backbone import FrozenClip
from .concepts import ConceptPhrases, concept_embeddings, top_concepts
from .config import SEARLEConfig
from .oti import invert_batches, template_tokens


class OTIQueryTokens(nn.Module):
    """Pseudo tokens by OTI of each image embedding it is given (no parameters: nothing is trained)."""

    def __init__(self, clip: FrozenClip, phrases: ConceptPhrases, cfg: SEARLEConfig, seed: int):
        super().__init__()
        self.clip, self.phrases, self.cfg, self.seed = clip, phrases, cfg, seed
        self.concept_feats = concept_embeddings(clip, phrases.concepts)  # [V, D]
        self.templates = template_tokens(clip)
        self.tokens: dict[bytes, torch.Tensor] = {}  # an image embedding's bytes -> its token [W]
        self.batches = 0

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
        concepts_of = top_concepts(feats, self.concept_feats, self.cfg.oti_top_k)  # [N, k]
        batches = invert_batches(self.clip, feats, concepts_of, self.phrases, self.templates, self.cfg, self.seed,
                                 first_batch=self.batches)
        done = 0
        # One bar per call: a protocol composes one domain or category at a time.
        with tqdm(total=len(keys), desc="OTI of the query images (SEARLE-OTI)", unit="img") as bar, \
                torch.enable_grad():  # the protocols compose queries under no_grad; OTI optimises
            for tokens in batches:  # [b, W]
                self.tokens.update(zip(keys[done:done + len(tokens)], tokens))
                done += len(tokens)
                self.batches += 1
                bar.update(len(tokens))
