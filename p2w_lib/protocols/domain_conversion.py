"""Pic2Word's domain-conversion protocol (ImageNet-R, and its demo analogue).

Queries are real images of a class; for each rendition domain d (prompt index p) the query is
composed with `a {d} of *` and must retrieve renditions of the same class in domain d. The
gallery holds all renditions plus the real query images as distractors. A hit needs the same
class AND domain: query labels are shifted by 1000 x p, gallery labels are 1000 x domain + class.
Metric: true recall@K = relevant retrieved in the top K / all relevant, averaged over queries.

Not every ImageNet-R class has renditions in every domain (in Pic2Word's lists 153, 106, 144 and
142 of the 200 classes for cartoon, origami, toy, sculpture). As in the official evaluation, a
query with no relevant image in a domain scores 0 and stays in that domain's mean
(`queries="all"`, the default); the results record how many there were per domain.
`queries="evaluable"` is this project's extra: such queries are left out of the domain's mean.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.data.imagenet_r import QUERY_LIST, TARGET_LIST, read_label_list
from p2w_lib.methods.base import encode_unique_texts
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import TokenMappers, compose_queries
from p2w_lib.protocols.common import (
    embed_gallery,
    embed_queries,
    log_counts,
    rank_and_score,
    results_document,
)
from p2w_lib.protocols.comparisons import compare_to_baseline, per_query_true_recall
from p2w_lib.retrieval.metrics import TRUE_RECALL_EPS, relevance_from_labels

log = logging.getLogger(__name__)

PROMPT = "a {domain} of *"
QUERY_SETS = ("all", "evaluable")  # "all": official; "evaluable": only queries with a relevant image


def evaluate_domain_conversion(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers,
    root: str | Path,
    domains: Sequence[str],
    ks: Sequence[int] = (10, 50),
    cache_dir: str | Path | None = None,
    oracle_texts: dict[str, list[str]] | None = None,
    max_bad_fraction: float = 0.01,
    profile: str = "paper",
    seed: int = 0,
    query_list: str = QUERY_LIST,
    target_list: str = TARGET_LIST,
    queries: str = "all",
) -> dict:
    """Evaluate every query method `mapper` allows (+ an optional oracle text row) per domain.

    domains: domain names in label-index order (index p = the rendition domain index p).
    oracle_texts: domain -> one text per query line (e.g. naming the true class), scored as text-only.
    """
    if queries not in QUERY_SETS:
        raise ValueError(
            f"domain conversion: queries={queries!r}; choose from {QUERY_SETS} ('all' is the official protocol)"
        )
    root = Path(root)
    query_items = read_label_list(root / query_list)
    target_items = read_label_list(root / target_list)
    gallery = embed_gallery(
        clip,
        [label for _, label in target_items],
        [str(root / p) for p, _ in target_items],
        cache_dir,
        max_bad_fraction,
        "embedding gallery",
    )
    ref_feats, ok = embed_queries(
        clip, [str(root / p) for p, _ in query_items], cache_dir, max_bad_fraction, "embedding queries"
    )
    ref_feats = ref_feats[ok]
    query_labels = torch.tensor([label for _, label in query_items])[ok]
    gallery_labels = torch.tensor(gallery.keys)
    log_counts("domain conversion", len(query_labels), int((~ok).sum()))
    log_counts("domain conversion gallery", len(gallery_labels), gallery.skipped, what="images")

    per_domain, no_relevant, ceiling, per_query = {}, {}, {}, {}
    n_label = int(max(gallery_labels.max().item(), query_labels.max().item() + 1000 * len(domains))) + 1
    per_label = torch.bincount(gallery_labels, minlength=n_label)  # gallery images per (domain, class) label
    for p, domain in enumerate(domains):
        shifted = query_labels + 1000 * p
        has_relevant = per_label[shifted] > 0  # [Q]
        no_relevant[domain] = int((~has_relevant).sum())
        rows = torch.ones_like(has_relevant) if queries == "all" else has_relevant
        prompts = [PROMPT.format(domain=domain)] * int(rows.sum())
        feats = compose_queries(clip, mapper, ref_feats[rows], prompts, methods=None, benchmark="domain_conversion")
        if oracle_texts is not None:
            texts = [t for t, keep in zip(oracle_texts[domain], ok.tolist()) if keep]
            feats["oracle_text"] = encode_unique_texts(clip, [t for t, r in zip(texts, rows.tolist()) if r])

        def relevance(idx, shifted=shifted[rows]):
            return relevance_from_labels(idx, shifted, gallery_labels)

        rel: dict[str, torch.Tensor] = {}  # method -> [Q, K], for the paired comparisons
        per_domain[domain] = rank_and_score(feats, gallery.feats, relevance, "true_recall", ks, per_query=rel)
        ceiling[domain] = true_recall_ceiling(per_label[shifted[rows]], ks)
        n_relevant = per_label[shifted[rows]]  # [Q], as relevance_from_labels counts them
        per_query[domain] = {
            m: {k: per_query_true_recall(r, n_relevant, k) for k in ks if r.shape[1] >= k} for m, r in rel.items()
        }
    if any(no_relevant.values()):
        log.info(
            "domain conversion: queries without a relevant image per domain %s (%s)",
            no_relevant,
            "scored 0 and kept in the mean, as the official metric"
            if queries == "all"
            else "left out: queries='evaluable'",
        )
    return results_document(
        profile,
        seed,
        "true_recall",
        per_domain,
        "per_domain",
        n_queries=int(len(query_labels)),
        n_queries_skipped=int((~ok).sum()),
        n_gallery=int(len(gallery_labels)),
        n_gallery_skipped=gallery.skipped,
        queries=queries,
        n_queries_without_relevant=no_relevant,
        ceiling=ceiling,
        comparisons=compare_to_baseline(per_query, ks, seed),
        comparisons_to_pic2word=compare_to_baseline(per_query, ks, seed, baseline="pic2word"),
    )


def true_recall_ceiling(n_relevant: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    """The best true recall@K any ranking can reach (%): a query with R relevant images finds at most
    min(K, R) of them in its top K (10 of 30 at K=10), and one without any scores 0."""
    n = n_relevant.double()  # [Q]
    return {f"R@{k}": (n.clamp(max=k) / (n + TRUE_RECALL_EPS)).mean().item() * 100 for k in ks}
