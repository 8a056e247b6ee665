"""Pieces every benchmark protocol shares: embedding a gallery with bad files dropped, ranking
every query method, and the results-file schema."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.features import embed_images
from p2w_lib.methods.registry import QUERY_METHODS, available_methods, compose_queries
from p2w_lib.protocols.results_schema import ResultsDocument
from p2w_lib.retrieval.metrics import score
from p2w_lib.retrieval.topk import topk_search

log = logging.getLogger(__name__)

Relevance = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # topk idx -> (rel, n_relevant)


@dataclass
class Gallery:
    """Normalised embeddings [N, D] of the gallery images that could be read (and the raw ones,
    for protocols whose reference images are gallery images)."""

    keys: list  # caller's ids of the kept images, in row order
    feats: torch.Tensor  # [N, D] normalised
    skipped: int
    raw: torch.Tensor | None = None  # [N, D] unnormalised, what the mapper eats

    def rows(self) -> dict:
        return {k: i for i, k in enumerate(self.keys)}


def embed_gallery(
    clip: FrozenClip, keys: Sequence, paths: Sequence[str], cache_dir, max_bad_fraction: float, desc: str
) -> Gallery:
    emb = embed_images(clip, paths, cache_dir=cache_dir, max_bad_fraction=max_bad_fraction, desc=desc)
    keep = torch.from_numpy(emb.valid)
    raw = emb.tensor()[keep]  # [N_ok, D]
    kept = [k for k, ok in zip(keys, emb.valid) if ok]
    return Gallery(keys=kept, feats=torch.nn.functional.normalize(raw, dim=-1), skipped=len(keys) - len(kept), raw=raw)


def embed_queries(clip: FrozenClip, paths: Sequence[str], cache_dir, max_bad_fraction: float, desc: str):
    """Unnormalised reference embeddings [Q, D] and a mask of the readable ones."""
    emb = embed_images(clip, paths, cache_dir=cache_dir, max_bad_fraction=max_bad_fraction, desc=desc)
    return emb.tensor(), torch.from_numpy(emb.valid)


def rank_and_score(
    queries: dict[str, torch.Tensor],
    gallery: torch.Tensor,
    relevance: Relevance,
    metric: str,
    ks: Sequence[int],
    precision_k: int | None = 10,
    exclude: torch.Tensor | None = None,
    per_query: dict[str, torch.Tensor] | None = None,
) -> dict[str, dict[str, float]]:
    """Scores per query method: metric@K for each K (+ precision@precision_k). `per_query`, when
    given, receives each method's relevance matrix [Q, K] (for paired statistics across methods)."""
    k_max = min(max(ks), gallery.shape[0] - (1 if exclude is not None else 0))
    if k_max < max(ks):  # only on toy galleries (fixtures, tiny profile): say which scores are missing
        log.warning("gallery of %d images: scores at K > %d are left out", gallery.shape[0], k_max)
    out = {}
    for method, q in queries.items():
        _, idx = topk_search(q, gallery, k=k_max, exclude=exclude)
        rel, n_rel = relevance(idx)
        if per_query is not None:
            per_query[method] = rel
        row = score(rel, n_rel, metric, [k for k in ks if k <= k_max])
        if precision_k is not None and precision_k <= k_max:
            row.update(score(rel, n_rel, "precision", [precision_k]))
        out[method] = row
    return out


def average_rows(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def results_document(
    profile: str, seed: int, metric: str, per_group: dict[str, dict[str, dict[str, float]]], group_key: str, **extra
) -> ResultsDocument:
    """A grouped benchmark's document (results_schema.py): each method's average over the groups, and
    under `group_key` its scores per group. per_group: group (domain / category) -> method -> scores."""
    methods = {}
    method_names = next(iter(per_group.values())).keys()
    for method in method_names:
        rows = {group: scores[method] for group, scores in per_group.items()}
        methods[method] = {**average_rows(list(rows.values())), group_key: rows}
    return {
        "profile": profile,
        "seed": seed,
        "metric": metric,
        "methods": methods,
        "group_key": group_key,
        "groups": list(per_group),
        **extra,
    }


def methods_document(
    profile: str, seed: int, metric: str, methods: dict[str, dict[str, float]], **extra
) -> ResultsDocument:
    """The document of a benchmark without groups (results_schema.py): method -> scores."""
    return {"profile": profile, "seed": seed, "metric": metric, "methods": methods, **extra}


def log_counts(task: str, evaluated: int, skipped: int, what: str = "queries") -> None:
    """Every evaluation says how many queries it scored and skipped (a warning when any was skipped)."""
    level = logging.WARNING if skipped else logging.INFO
    log.log(level, "%s: %d %s evaluated, %d skipped (missing or unreadable images)", task, evaluated, what, skipped)


# eval.prompts: each method under its own paper's prompts (the default), or every method under one family
PROMPT_CHOICES = ("own", "pic2word", "searle")


def protocol_of(method: str, choice: str) -> str:
    """The prompt family `method` is scored with under eval.prompts = `choice`."""
    if choice not in PROMPT_CHOICES:
        raise ValueError(f"unknown prompt choice {choice!r}; choose from {PROMPT_CHOICES}")
    return QUERY_METHODS[method].protocol if choice == "own" else choice


def compose_by_protocol(
    mapper, methods: Sequence[str] | None, choice: str, compose: Callable[[str, list[str]], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Every method's queries, each group of methods composed by compose(family, group) with its
    family's prompts; in registry order. methods: None = every method the networks allow."""
    names = available_methods(mapper) if methods is None else tuple(methods)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(protocol_of(name, choice), []).append(name)
    out = {}
    for family, group in groups.items():
        out.update(compose(family, group))
    return {name: out[name] for name in QUERY_METHODS if name in out}


def own_protocols(methods) -> dict[str, str]:
    """{method: family} of the methods whose own paper's prompts are not Pic2Word's (recorded in results)."""
    return {
        m: QUERY_METHODS[m].protocol for m in methods if m in QUERY_METHODS and QUERY_METHODS[m].protocol != "pic2word"
    }


def caption_queries(
    clip: FrozenClip,
    mapper,
    gallery: Gallery,
    references: Sequence,
    captions: Sequence[str],
    prompts: Mapping[str, str],
    methods: Sequence[str] | None,
    benchmark: str,
    choice: str = "own",
) -> dict[str, torch.Tensor]:
    """Query embeddings when the reference images are gallery images (CIRR, CIRCO): a method's
    prompt is its family's `prompts[family].format(caption=...)` (eval.prompts = `choice`), the
    text-only baseline the caption itself."""

    rows = gallery.rows()
    refs = gallery.raw[torch.tensor([rows[r] for r in references], dtype=torch.long)]  # [Q, D] unnormalised

    def compose(family: str, group: list[str]) -> dict[str, torch.Tensor]:
        return compose_queries(
            clip,
            mapper,
            refs,
            [prompts[family].format(caption=c) for c in captions],
            text_only=list(captions),
            methods=group,
            benchmark=benchmark,
            captions=[(c,) for c in captions],
        )

    return compose_by_protocol(mapper, methods, choice, compose)
