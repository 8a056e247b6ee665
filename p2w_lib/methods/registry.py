"""The registry of query methods: the ways to turn (reference image, text) into one query embedding,
in report order: the paper's four, Slerp, LinCIR, SEARLE and SEARLE-OTI.

- image_only: the normalised image embedding;
- text_only: the normalised embedding of the prompt with `*` removed (e.g. `a origami of`),
  as the official ImageNet-R evaluation does;
- image_text: normalise(normalise(image) + normalise(text));
- slerp: the point a fraction alpha along the great circle from the image to the text (slerp.py;
  alpha per benchmark, as the Slerp paper sets it);
- pic2word: the prompt encoded with the mapper's pseudo token in place of `*`;
- lincir: the same prompt with LinCIR's phi (trained on captions only, lincir/) making the token;
- searle: the same prompt with SEARLE's phi (distilled from OTI tokens of the images, searle/);
- searle_oti: the same prompt with a token fitted to the reference image at query time by SEARLE's
  textual inversion (searle_oti.py): no network is trained, each query image costs an optimisation;
- combiner_fashion_iq, combiner_cirr: the supervised comparison, Combiner trained on Fashion-IQ's or
  CIRR's labeled triplets (combiner/), fusing the image's and the caption's features; not zero-shot.
All outputs are L2-normalised [Q, D].

The trained methods read their network from `QueryInputs.mappers` under their own name; a
protocol asked for no particular methods scores every method whose network it was given.

Each method is declared in its own module (a `QueryMethod`, with a `Training` for a trained one,
methods/base.py). Adding one: that module and one line in `QUERY_METHODS`, or `register(...)` from
outside the package; every protocol then scores it (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.methods import baselines, combiner, lincir, pic2word, searle, searle_oti, slerp
from p2w_lib.methods.base import QueryInputs, QueryMethod, text_only_prompt

# Report order: the paper's baselines, Slerp, Pic2Word, LinCIR, SEARLE, SEARLE-OTI, then the supervised rows. Each entry is
# declared in its method's own module; adding a method is that module and one line here.
QUERY_METHODS: dict[str, QueryMethod] = {
    m.name: m
    for m in (
        baselines.IMAGE_ONLY,
        baselines.TEXT_ONLY,
        baselines.IMAGE_TEXT,
        slerp.METHOD,
        pic2word.METHOD,
        lincir.METHOD,
        searle.METHOD,
        searle_oti.METHOD,
        combiner.FASHION_IQ,
        combiner.CIRR,
    )
}
METHODS: tuple[str, ...] = tuple(QUERY_METHODS)


def register(method: QueryMethod) -> QueryMethod:
    """Add `method` after the others (a method declared outside the package: an extension, a test).
    The tuple METHODS is the package's own methods; `names()` includes registered ones."""
    if method.name in QUERY_METHODS:
        raise ValueError(f"a query method named {method.name!r} is registered already")
    QUERY_METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    if name in METHODS:
        raise ValueError(f"{name!r} is one of the package's own methods")
    QUERY_METHODS.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(QUERY_METHODS)


def trained() -> dict[str, QueryMethod]:
    """The registered methods that need a network, in report order."""
    return {n: m for n, m in QUERY_METHODS.items() if m.trained}


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
    options: Mapping[str, Mapping[str, Any]] | None = None,
    captions: Sequence[tuple[str, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """Query embeddings for each method in `methods` (None: every method `mapper` allows).

    mapper: Pic2Word's mapper, or {method: network} for the trained methods (see QueryInputs).
    image_feats: [Q, D] unnormalised CLIP embeddings of the reference images.
    prompts: Q prompts with `*`; text_only: the text-only strings (default: prompts without `*`).
    benchmark: the benchmark asking (its registry name), for methods whose setting depends on it (Slerp's alpha).
    options: {method: {name: value}} settings for this call, e.g. {"slerp": {"alpha": 0.7}} (a search, an ablation).
    captions: the Q relative captions themselves (a tuple each), for methods that read them (Combiner).
    """
    if len(prompts) != image_feats.shape[0]:
        raise ValueError(f"{len(prompts)} prompts for {image_feats.shape[0]} reference images")
    mappers = as_mappers(mapper)
    methods = available_methods(mappers) if methods is None else methods
    unknown = set(methods) - set(QUERY_METHODS)
    if unknown:
        raise ValueError(f"unknown query method(s) {sorted(unknown)}; choose from {names()}")
    texts = list(text_only) if text_only is not None else [text_only_prompt(p) for p in prompts]
    inputs = QueryInputs(
        clip, mappers, image_feats, prompts, texts, batch_size, benchmark, dict(options or {}), captions
    )
    return {name: m.compose(inputs) for name, m in QUERY_METHODS.items() if name in methods}  # registry order
