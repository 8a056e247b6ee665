"""The paper's four ways to turn (reference image, text) into one query embedding.

- image_only: the normalised image embedding;
- text_only: the normalised embedding of the prompt with `*` removed (e.g. `a origami of`),
  as the official ImageNet-R evaluation does;
- image_text: normalise(normalise(image) + normalise(text));
- pic2word: the prompt encoded with the mapper's pseudo token in place of `*`.
All outputs are L2-normalised [Q, D].
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F

from .clip_backbone import FrozenClip
from .composed import PLACEHOLDER, encode_composed_tokens, tokenize_prompts
from .mapper import Mapper
from .prefix_cache import PrefixCachedText, supports_prefix_cache

METHODS = ("image_only", "text_only", "image_text", "pic2word")


def text_only_prompt(prompt: str) -> str:
    """The prompt without its placeholder, whitespace collapsed ('a photo of * , is red' -> 'a photo of , is red')."""
    return re.sub(r"\s+", " ", prompt.replace(PLACEHOLDER, "")).strip()


@torch.no_grad()
def encode_unique_texts(clip: FrozenClip, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised text embeddings [Q, D], encoding each distinct string once."""
    unique = sorted(set(texts))
    row = {t: i for i, t in enumerate(unique)}
    feats = torch.cat([clip.encode_text(unique[i:i + batch_size], normalize=True) for i in range(0, len(unique), batch_size)])
    return feats[torch.tensor([row[t] for t in texts])].cpu()  # [Q, D]


@torch.no_grad()
def pic2word_queries(clip: FrozenClip, mapper: Mapper, image_feats: torch.Tensor, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Composed query embeddings [Q, D] from unnormalised image embeddings [Q, D]."""
    was_training = mapper.training
    mapper.eval()
    # `a {domain} of *`: each domain's prefix runs once, then 2 positions per query (prefix_cache.py).
    cached = PrefixCachedText(clip.model) if supports_prefix_cache(clip.model) else None
    try:
        out = []
        for i in range(0, len(prompts), batch_size):
            feats = image_feats[i:i + batch_size].to(clip.device)  # [B, D]
            pseudo = mapper(feats)  # [B, W]
            tokens = tokenize_prompts(clip.model, clip.tokenizer, list(prompts[i:i + batch_size]))
            text = cached.encode(tokens, pseudo) if cached else encode_composed_tokens(clip.model, tokens, pseudo)  # [B, D]
            out.append(text.float().cpu())
        return torch.cat(out)
    finally:
        mapper.train(was_training)


def compose_queries(
    clip: FrozenClip,
    mapper: Mapper | None,
    image_feats: torch.Tensor,
    prompts: Sequence[str],
    text_only: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    batch_size: int = 256,
) -> dict[str, torch.Tensor]:
    """Query embeddings for each method in `methods`.

    image_feats: [Q, D] unnormalised CLIP embeddings of the reference images.
    prompts: Q prompts with `*`; text_only: the text-only strings (default: prompts without `*`).
    """
    if len(prompts) != image_feats.shape[0]:
        raise ValueError(f"{len(prompts)} prompts for {image_feats.shape[0]} reference images")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown query method(s) {sorted(unknown)}; choose from {METHODS}")
    texts = list(text_only) if text_only is not None else [text_only_prompt(p) for p in prompts]
    image = F.normalize(image_feats.float(), dim=-1)
    out: dict[str, torch.Tensor] = {}
    if "image_only" in methods:
        out["image_only"] = image
    if "text_only" in methods or "image_text" in methods:
        text = encode_unique_texts(clip, texts, batch_size)
        if "text_only" in methods:
            out["text_only"] = text
        if "image_text" in methods:
            out["image_text"] = F.normalize(image + text, dim=-1)
    if "pic2word" in methods:
        if mapper is None:
            raise ValueError("the pic2word method needs a trained mapper")
        out["pic2word"] = pic2word_queries(clip, mapper, image_feats, prompts, batch_size)
    return out
