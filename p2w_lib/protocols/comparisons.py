"""Every query method against the image + text baseline (and against Pic2Word), per query, with the
uncertainty over queries.

A benchmark's results document keeps, under `comparisons`, each method's difference to the baseline
in the benchmark's own metric at each K, with a 95% paired bootstrap interval (metrics.paired_bootstrap:
queries resampled within each group, both methods' scores of a query kept together). Per query the
score is the one the benchmark averages: a hit (Fashion-IQ, recall@K as a hit rate) or the share of
the relevant images found in the top K (domain conversion's true recall, the official +1e-5 in the
denominator included), so the mean difference is exactly the difference of the tables' averages.

Under `comparisons_to_pic2word` it keeps the same against Pic2Word (e.g. the supervised Combiner's margin).
`verdict` turns a comparison over seeds into words only as strong as the intervals allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from p2w_lib.retrieval.metrics import TRUE_RECALL_EPS, paired_bootstrap

BASELINE = "image_text"
NOT_COMPARED = ("oracle_text",)  # a headroom row, not a method


def per_query_hits(rel: torch.Tensor, k: int) -> torch.Tensor:
    """[Q] 100 where the top k holds a relevant image, else 0 (the hit rate's per-query score)."""
    return rel[:, :k].any(dim=1).double() * 100


def per_query_true_recall(rel: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """[Q] relevant images in the top k over all relevant images, in percent (+1e-5 as the official)."""
    return rel[:, :k].sum(dim=1).double() / (n_relevant.double() + TRUE_RECALL_EPS) * 100


def compare_to_baseline(
    per_group: Mapping[str, Mapping[str, Mapping[int, torch.Tensor]]],
    ks: Sequence[int],
    seed: int = 0,
    baseline: str = BASELINE,
) -> dict:
    """per_group: group -> method -> {k: per-query scores [Q_g]}. Returns {"baseline": ..., "R@k":
    {method: Interval}} for every method scored in every group; {} without the baseline."""
    groups = list(per_group.values())
    if not groups or not all(baseline in g for g in groups):
        return {}
    methods = [m for m in groups[0] if m != baseline and m not in NOT_COMPARED and all(m in g for g in groups)]
    out: dict = {"baseline": baseline}
    for k in ks:
        if not all(k in g[baseline] for g in groups):
            continue  # a toy gallery smaller than K: no score there
        out[f"R@{k}"] = {
            m: paired_bootstrap([g[m][k] for g in groups], [g[baseline][k] for g in groups], seed=seed) for m in methods
        }
    return out


def verdict(intervals: Sequence[Mapping[str, float]]) -> str:
    """'above' when every seed's interval lies above 0, 'below' when every one lies below, else
    'no clear difference': a direction only where each seed's queries support it."""
    if intervals and all(i["ci_low"] > 0 for i in intervals):
        return "above"
    if intervals and all(i["ci_high"] < 0 for i in intervals):
        return "below"
    return "no clear difference"
