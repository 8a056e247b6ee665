"""The registry of query methods: the ways to turn (reference image, text) into one query embedding,
in report order: the paper's four, Slerp, LinCIR, SEARLE and SEARLE-OTI.

- image_only: the normalised image embedding;
- text_only: the normalised embedding of the prompt with `*` removed (e.g. `a origami of`),
  as the official ImageNet-R evaluation does;
- image_text: normalise(normalise(image) + normalise(text));
- slerp: the point a fraction alpha along the great circle from the image to the text (slerp.py;
  alpha per benchmark, as the Slerp paper sets it);
- pic2word: the prompt encoded with the mapper's pseudo token in place of `*`;
- lincir: the same prompt with LinCIR's phi (trained on captions only, lincir.py) making the token;
- searle: the same prompt with SEARLE's phi (distilled from OTI tokens of the images, searle.py);
- searle_oti: the same prompt with a token fitted to the reference image at query time by SEARLE's
  textual inversion (oti_queries.py): no network is trained, each query image costs an optimisation.
All outputs are L2-normalised [Q, D].

The trained methods read their network from `QueryInputs.mappers` under their own name; a
protocol asked for no particular methods scores every method whose network it was given.

Adding a method: a function `QueryInputs -> [Q, D]` (in its own module if it is more than a line)
and one `QueryMethod(...)` line in `QUERY_METHODS`; every protocol then scores it (docs/extending.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .clip_backbone import FrozenClip
from .composed import PLACEHOLDER, encode_composed_tokens, tokenize_prompts
from .prefix_cache import PrefixCachedText, supports_prefix_cache
from .slerp import alpha_for, slerp


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
def pseudo_token_queries(clip: FrozenClip, mapper: nn.Module, image_feats: torch.Tensor, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Composed query embeddings [Q, D] from unnormalised image embeddings [Q, D]; `mapper` is any
    network from image embedding to pseudo token (Pic2Word's mapper, a phi, SEARLE-OTI's inversion)."""
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
    """What a method composes from: Q reference images and their texts, and the trained networks
    (method name -> network). The encodings that several methods share (the normalised image, the
    text-only text) are computed once, when first asked."""

    clip: FrozenClip
    mappers: Mapping[str, nn.Module]
    image_feats: torch.Tensor  # [Q, D] unnormalised CLIP image embeddings
    prompts: Sequence[str]  # Q prompts with `*`
    texts: Sequence[str]  # Q text-only strings
    batch_size: int = 256
    benchmark: str | None = None  # the registry name of the benchmark asking: methods with per-benchmark settings read it
    slerp_alpha: float | None = None  # set: Slerp's alpha for this call (search --alpha); None: the benchmark's

    @cached_property
    def image(self) -> torch.Tensor:
        return F.normalize(self.image_feats.float(), dim=-1)  # [Q, D]

    @cached_property
    def text(self) -> torch.Tensor:
        return encode_unique_texts(self.clip, self.texts, self.batch_size)  # [Q, D], normalised

    def require_mapper(self, method: str) -> nn.Module:
        if method not in self.mappers:
            raise ValueError(f"the {method} method needs its trained network; got networks for {sorted(self.mappers)}")
        return self.mappers[method]


@dataclass(frozen=True)
class QueryMethod:
    name: str
    label: str  # how tables and figures name it
    short: str  # its key in the small summary files `dvc metrics show` prints
    compose: Callable[[QueryInputs], torch.Tensor]  # [Q, D], L2-normalised
    colour: str  # its bars and lines in every figure
    trained: bool = False  # needs a network in QueryInputs.mappers under its name


def _image_text(q: QueryInputs) -> torch.Tensor:
    return F.normalize(q.image + q.text, dim=-1)  # [Q, D]


def _slerp(q: QueryInputs) -> torch.Tensor:
    """Slerp at the caller's alpha, else at the paper's alpha for the benchmark asking."""
    return slerp(q.image, q.text, alpha_for(q.benchmark) if q.slerp_alpha is None else q.slerp_alpha)  # [Q, D]


def _pseudo_token(method: str) -> Callable[[QueryInputs], torch.Tensor]:
    """Compose the prompt with the token of `method`'s network (every trained method: same prompt, other token)."""
    return lambda q: pseudo_token_queries(q.clip, q.require_mapper(method), q.image_feats, q.prompts, q.batch_size)


QUERY_METHODS: dict[str, QueryMethod] = {m.name: m for m in (
    QueryMethod("image_only", "image only", "img", lambda q: q.image, "#9e9e9e"),
    QueryMethod("text_only", "text only", "txt", lambda q: q.text, "#bdbdbd"),
    QueryMethod("image_text", "image + text", "img+txt", _image_text, "#64b5f6"),
    QueryMethod("slerp", "Slerp", "slerp", _slerp, "#26a69a"),
    QueryMethod("pic2word", "Pic2Word", "p2w", _pseudo_token("pic2word"), "#e53935", trained=True),
    QueryMethod("lincir", "LinCIR", "lin", _pseudo_token("lincir"), "#8e24aa", trained=True),
    QueryMethod("searle", "SEARLE", "srl", _pseudo_token("searle"), "#fb8c00", trained=True),
    QueryMethod("searle_oti", "SEARLE-OTI", "oti", _pseudo_token("searle_oti"), "#8d6e63", trained=True),
)}
METHODS: tuple[str, ...] = tuple(QUERY_METHODS)

TokenMappers = Mapping[str, nn.Module]


def as_mappers(mapper: nn.Module | TokenMappers | None) -> dict[str, nn.Module]:
    """{method: network}; a bare network is Pic2Word's mapper (the single-method call of earlier versions)."""
    if mapper is None:
        return {}
    if isinstance(mapper, nn.Module):
        return {"pic2word": mapper}
    unknown = set(mapper) - {n for n, m in QUERY_METHODS.items() if m.trained}
    if unknown:
        raise ValueError(f"networks given for {sorted(unknown)}, which are not trained query methods")
    return dict(mapper)


def available_methods(mapper: nn.Module | TokenMappers | None) -> tuple[str, ...]:
    """Every method that can run with these networks, in registry order."""
    have = as_mappers(mapper)
    return tuple(n for n, m in QUERY_METHODS.items() if not m.trained or n in have)


def compose_queries(
    clip: FrozenClip,
    mapper: nn.Module | TokenMappers | None,
    image_feats: torch.Tensor,
    prompts: Sequence[str],
    text_only: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    batch_size: int = 256,
    benchmark: str | None = None,
    slerp_alpha: float | None = None,
) -> dict[str, torch.Tensor]:
    """Query embeddings for each method in `methods` (None: every method `mapper` allows).

    mapper: Pic2Word's mapper, or {method: network} for the trained methods (see QueryInputs).
    image_feats: [Q, D] unnormalised CLIP embeddings of the reference images.
    prompts: Q prompts with `*`; text_only: the text-only strings (default: prompts without `*`).
    benchmark: the benchmark asking (its registry name), for methods whose setting depends on it (Slerp's alpha).
    slerp_alpha: Slerp's alpha for this call instead of the benchmark's (a search, an ablation).
    """
    if len(prompts) != image_feats.shape[0]:
        raise ValueError(f"{len(prompts)} prompts for {image_feats.shape[0]} reference images")
    mappers = as_mappers(mapper)
    methods = available_methods(mappers) if methods is None else methods
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown query method(s) {sorted(unknown)}; choose from {METHODS}")
    texts = list(text_only) if text_only is not None else [text_only_prompt(p) for p in prompts]
    inputs = QueryInputs(clip, mappers, image_feats, prompts, texts, batch_size, benchmark, slerp_alpha)
    return {name: m.compose(inputs) for name, m in QUERY_METHODS.items() if name in methods}  # registry order
