"""Retrieval metrics, all in percent, from top-K gallery indices.

Each metric is computed from a boolean relevance matrix `rel` [Q, K] (is the k-th retrieved
image relevant to query q?) and the number of relevant gallery images per query:
- hit-rate recall@K (Fashion-IQ, CIRR): did any relevant image make the top K;
- true recall@K (Pic2Word's ImageNet-R): relevant retrieved in the top K / (all relevant + 1e-5),
  exactly as the official `get_metrics_imgnet`: a query with no relevant image scores 0 and stays
  in the mean (ImageNet-R has classes without renditions in some domains);
- precision@K: relevant retrieved in the top K / K;
- mAP@K (CIRCO): AP@K = sum_{k<=K} P@k * rel(k) / min(K, |relevant|).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch


def relevance_from_labels(topk_idx: torch.Tensor, query_labels: torch.Tensor, gallery_labels: torch.Tensor):
    """rel [Q, K] and n_relevant [Q] when relevance means equal labels."""
    rel = gallery_labels[topk_idx] == query_labels[:, None]  # [Q, K]
    n_relevant = (gallery_labels[None, :] == query_labels[:, None]).sum(dim=1)  # [Q]
    return rel, n_relevant


def relevance_from_sets(topk_idx: torch.Tensor, targets: Sequence[Collection[int]]):
    """rel [Q, K] and n_relevant [Q] when each query lists its relevant gallery indices."""
    if len(targets) != topk_idx.shape[0]:
        raise ValueError(f"{len(targets)} target sets for {topk_idx.shape[0]} queries")
    q = torch.repeat_interleave(torch.arange(len(targets)), torch.tensor([len(t) for t in targets]))
    g = torch.tensor([i for t in targets for i in t], dtype=torch.long)
    n_gallery = int(max(topk_idx.max().item(), g.max().item() if len(g) else 0)) + 1
    member = torch.zeros(len(targets), n_gallery, dtype=torch.bool)  # [Q, N]
    member[q, g] = True
    rel = member.gather(1, topk_idx)  # [Q, K]
    return rel, member.sum(dim=1)


# The official ImageNet-R metric adds this to the denominator, which is what scores 0 for a query
# without any relevant image instead of dividing by zero.
TRUE_RECALL_EPS = 1e-5


def _check(rel: torch.Tensor, n_relevant: torch.Tensor, k: int, allow_no_relevant: bool = False) -> None:
    if k > rel.shape[1]:
        raise ValueError(f"metric@{k} needs at least {k} retrieved items per query, got {rel.shape[1]}")
    if not allow_no_relevant and (n_relevant == 0).any():
        bad = torch.nonzero(n_relevant == 0).squeeze(1)[:5].tolist()
        raise ValueError(f"queries {bad} have no relevant image in the gallery; drop them before scoring")


def hit_rate(rel: torch.Tensor, n_relevant: torch.Tensor, k: int) -> float:
    _check(rel, n_relevant, k)
    return rel[:, :k].any(dim=1).float().mean().item() * 100


def true_recall(rel: torch.Tensor, n_relevant: torch.Tensor, k: int) -> float:
    _check(rel, n_relevant, k, allow_no_relevant=True)
    hits = rel[:, :k].sum(dim=1).double()  # [Q]
    return (hits / (n_relevant.double() + TRUE_RECALL_EPS)).mean().item() * 100


def precision(rel: torch.Tensor, n_relevant: torch.Tensor, k: int) -> float:
    _check(rel, n_relevant, k, allow_no_relevant=True)
    return (rel[:, :k].sum(dim=1).float() / k).mean().item() * 100


def average_precision(rel: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """AP@k per query [Q]: sum over ranks i <= k of P@i at each hit, divided by min(k, n_relevant)."""
    _check(rel, n_relevant, k)
    hits = rel[:, :k].float()  # [Q, k]
    precision_at = hits.cumsum(dim=1) / torch.arange(1, k + 1)  # [Q, k] P@i
    return (precision_at * hits).sum(dim=1) / n_relevant.clamp(max=k)


def mean_average_precision(rel: torch.Tensor, n_relevant: torch.Tensor, k: int) -> float:
    return average_precision(rel, n_relevant, k).mean().item() * 100


METRICS = {"hit_rate": hit_rate, "true_recall": true_recall, "precision": precision, "map": mean_average_precision}


def score(rel: torch.Tensor, n_relevant: torch.Tensor, metric: str, ks: Sequence[int]) -> dict[str, float]:
    """{'R@10': ..., 'R@50': ...} (or 'P@k' / 'mAP@k') for one metric at several K."""
    prefix = {"hit_rate": "R", "true_recall": "R", "precision": "P", "map": "mAP"}[metric]
    return {f"{prefix}@{k}": METRICS[metric](rel, n_relevant, k) for k in ks}


def paired_bootstrap(
    a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], n_boot: int = 10000, seed: int = 0, level: float = 0.95
) -> dict:
    """Mean of the groups' mean per-query differences a - b (e.g. Pic2Word's hits minus image + text's,
    per Fashion-IQ category, averaged as the benchmark averages its categories), with a percentile
    bootstrap interval: queries are resampled with replacement within each group, both methods'
    scores of a query staying paired.

    a, b: per group, one score per query [Q_g], the same queries in the same order.
    """
    if len(a) != len(b) or not a:
        raise ValueError(
            f"paired bootstrap needs the same non-empty list of groups for both methods ({len(a)} vs {len(b)})"
        )
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(n_boot, dtype=torch.float64)  # [B] sum over groups of the resampled mean difference
    for x, y in zip(a, b):
        if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
            raise ValueError(
                f"paired scores must be two equal, non-empty 1-d tensors, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        diff = x.double() - y.double()  # [Q]
        for lo in range(0, n_boot, 1000):  # chunks bound the [chunk, Q] index matrix
            n = min(1000, n_boot - lo)
            idx = torch.randint(len(diff), (n, len(diff)), generator=gen)  # [n, Q]
            total[lo : lo + n] += diff[idx].mean(dim=1)
    boot = total / len(a)
    alpha = (1 - level) / 2
    mean = sum(float((x.double() - y.double()).mean()) for x, y in zip(a, b)) / len(a)
    return {
        "mean": mean,
        "ci_low": float(torch.quantile(boot, alpha)),
        "ci_high": float(torch.quantile(boot, 1 - alpha)),
        "level": level,
        "n_boot": n_boot,
    }
