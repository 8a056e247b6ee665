"""Each method against image + text, per query: the per-query scores average to the tables' numbers,
the comparison's mean is the difference of the tables' averages, and the verdict never claims a
direction an interval does not support."""

from __future__ import annotations

import pytest
import torch

from p2w_lib import Mapper
from p2w_lib.data.fashion_iq import CATEGORIES
from p2w_lib.demo.world import RENDITIONS
from p2w_lib.protocols.comparisons import compare_to_baseline, per_query_hits, per_query_true_recall, verdict
from p2w_lib.protocols.domain_conversion import evaluate_domain_conversion
from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq
from p2w_lib.retrieval.metrics import hit_rate, paired_bootstrap, true_recall
from tests.test_demo_world import world  # noqa: F401  (session fixture: the tiny demo world)


def _random_rel(q: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rel = torch.rand(q, k, generator=gen) < 0.2  # [Q, K]
    n_relevant = rel.sum(dim=1) + torch.randint(0, 5, (q,), generator=gen)  # [Q], some with none at all
    return rel, n_relevant


@pytest.mark.parametrize("k", [1, 5, 10])
def test_per_query_scores_average_to_the_metrics(k):
    rel, n_relevant = _random_rel(200, 10, seed=k)
    assert per_query_true_recall(rel, n_relevant, k).mean().item() == pytest.approx(true_recall(rel, n_relevant, k))
    hits = per_query_hits(rel, k)
    assert set(hits.unique().tolist()) <= {0.0, 100.0}
    assert hits.mean().item() == pytest.approx(hit_rate(rel, n_relevant.clamp(min=1), k))


def test_the_comparison_is_a_paired_bootstrap_of_each_method_minus_the_baseline():
    gen = torch.Generator().manual_seed(0)
    groups = {
        g: {m: {10: torch.rand(n, generator=gen) * 100} for m in ("image_text", "pic2word", "oracle_text")}
        for g, n in (("a", 30), ("b", 50))
    }
    out = compare_to_baseline(groups, ks=(10, 50), seed=3)
    assert out["baseline"] == "image_text" and set(out) == {"baseline", "R@10"}  # no K=50 scores given
    assert set(out["R@10"]) == {"pic2word"}  # the oracle is headroom, the baseline is not against itself
    a = [groups[g]["pic2word"][10] for g in ("a", "b")]
    b = [groups[g]["image_text"][10] for g in ("a", "b")]
    assert out["R@10"]["pic2word"] == paired_bootstrap(a, b, seed=3)
    by_hand = sum((x.double() - y.double()).mean().item() for x, y in zip(a, b)) / 2  # the groups averaged
    assert out["R@10"]["pic2word"]["mean"] == pytest.approx(by_hand)
    assert compare_to_baseline({"a": {"pic2word": {10: a[0]}}}, ks=(10,)) == {}  # nothing to compare against


def test_the_verdict_follows_every_seeds_interval():
    up, down, across = (
        {"mean": 3, "ci_low": 1, "ci_high": 5},
        {"mean": -3, "ci_low": -5, "ci_high": -1},
        {"mean": 1, "ci_low": -1, "ci_high": 3},
    )
    assert verdict([up, up]) == "above" and verdict([down]) == "below"
    assert verdict([up, across]) == verdict([up, down]) == verdict([]) == "no clear difference"


def _check_means(result: dict, ks) -> None:
    """The comparison's mean is the difference of the table's averages, method by method."""
    comparisons = result["comparisons"]
    methods = result["methods"]
    for k in ks:
        compared = comparisons[f"R@{k}"]
        assert set(compared) == set(methods) - {"image_text", "oracle_text"}
        for m, interval in compared.items():
            diff = methods[m][f"R@{k}"] - methods["image_text"][f"R@{k}"]
            assert interval["mean"] == pytest.approx(diff, abs=1e-4)
            assert interval["ci_low"] <= interval["mean"] <= interval["ci_high"]


def test_domain_conversion_compares_every_method_with_image_text(world, clip):  # noqa: F811
    torch.manual_seed(0)
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=32).eval()
    _check_means(evaluate_domain_conversion(clip, mapper, world, RENDITIONS, ks=(10, 50), profile="tiny"), (10, 50))


def test_fashion_iq_compares_every_method_with_image_text(world, clip):  # noqa: F811
    torch.manual_seed(0)
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=32).eval()
    result = evaluate_fashion_iq(clip, mapper, world / "fashion-iq", CATEGORIES, ks=(10, 50), profile="tiny")
    _check_means(result, (10, 50))
