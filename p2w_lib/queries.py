"""The registry of query methods: the paper's four ways to turn (reference image, text) into one
query embedding, in report order.

- image_only: the normalised image embedding;
- text_only: the normalised embedding of the prompt with `*` removed (e.g. `a origami of`),
  as the official ImageNet-R evaluation does;
- image_text: normalise(normalise(image) + normalise(text));
- pic2word: the prompt encoded with the mapper's pseudo token in place of `*`.
All outputs are L2-normalised [Q, D].

Adding a method: a function `QueryInputs -> [Q, D]` (in its own module if it is more than a line)
and one `QueryMethod(...)` line in `QUERY_METHODS`; every protocol then scores it (docs/extending.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .clip_backbone import FrozenClip
from .composed import PLACEHOLDER, encode_composed_tokens, tokenize_prompts
from .mapper import Mapper
from .prefix_cache import PrefixCachedText, supports_prefix_cache


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


@dataclass
class QueryInputs:
    """What a method composes from: Q reference images and their texts. The encodings that several
    methods share (the normalised image, the text-only text) are computed once, when first asked."""

    clip: FrozenClip
    mapper: Mapper | None
    image_feats: torch.Tensor  # [Q, D] unnormalised CLIP image embeddings
    prompts: Sequence[str]  # Q prompts with `*`
    texts: Sequence[str]  # Q text-only strings
    batch_size: int = 256

    @cached_property
    def image(self) -> torch.Tensor:
        return F.normalize(self.image_feats.float(), dim=-1)  # [Q, D]

    @cached_property
    def text(self) -> torch.Tensor:
        return encode_unique_texts(self.clip, self.texts, self.batch_size)  # [Q, D], normalised

    def require_mapper(self, method: str) -> Mapper:
        if self.mapper is None:
            raise ValueError(f"the {method} method needs a trained mapper")
        return self.mapper


@dataclass(frozen=True)
class QueryMethod:
    name: str
    label: str  # how tables and figures name it
    short: str  # its key in the small summary files `dvc metrics show` prints
    compose: Callable[[QueryInputs], torch.Tensor]  # [Q, D], L2-normalised


def _image_text(q: QueryInputs) -> torch.Tensor:
    return F.normalize(q.image + q.text, dim=-1)  # [Q, D]


def _pic2word(q: QueryInputs) -> torch.Tensor:
    return pic2word_queries(q.clip, q.require_mapper("pic2word"), q.image_feats, q.prompts, q.batch_size)


QUERY_METHODS: dict[str, QueryMethod] = {m.name: m for m in (
    QueryMethod("image_only", "image only", "img", lambda q: q.image),
    QueryMethod("text_only", "text only", "txt", lambda q: q.text),
    QueryMethod("image_text", "image + text", "img+txt", _image_text),
    QueryMethod("pic2word", "Pic2Word", "p2w", _pic2word),
)}
METHODS: tuple[str, ...] = tuple(QUERY_METHODS)


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
    inputs = QueryInputs(clip, mapper, image_feats, prompts, texts, batch_size)
    return {name: m.compose(inputs) for name, m in QUERY_METHODS.items() if name in methods}  # registry order
