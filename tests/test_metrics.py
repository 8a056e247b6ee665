"""Each metric against a slow, obvious reference on random rankings."""

from __future__ import annotations

import random

import pytest
import torch

from p2w_lib.retrieval import metrics
from p2w_lib.retrieval.topk import topk_search


def ranked_and_targets(seed, n_queries=40, n_gallery=60, k=20):
    rng = random.Random(seed)
    ranked = [rng.sample(range(n_gallery), k) for _ in range(n_queries)]
    targets = [set(rng.sample(range(n_gallery), rng.randint(1, 8))) for _ in range(n_queries)]
    return ranked, targets


def ref_hit_rate(ranked, targets, k):
    return 100 * sum(any(g in t for g in r[:k]) for r, t in zip(ranked, targets)) / len(ranked)


def ref_true_recall(ranked, targets, k):
    # the official get_metrics_imgnet: num_correct / (num_total + 1e-5), averaged over every query
    return 100 * sum(len(set(r[:k]) & t) / (len(t) + 1e-5) for r, t in zip(ranked, targets)) / len(ranked)


def ref_precision(ranked, targets, k):
    return 100 * sum(len(set(r[:k]) & t) / k for r, t in zip(ranked, targets)) / len(ranked)


def ref_map(ranked, targets, k):
    total = 0.0
    for r, t in zip(ranked, targets):
        hits, ap = 0, 0.0
        for i, g in enumerate(r[:k], start=1):
            if g in t:
                hits += 1
                ap += hits / i
        total += ap / min(k, len(t))
    return 100 * total / len(ranked)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 5, 10, 20])
@pytest.mark.parametrize(
    "name, ref",
    [("hit_rate", ref_hit_rate), ("true_recall", ref_true_recall), ("precision", ref_precision), ("map", ref_map)],
)
def test_metric_matches_reference(seed, k, name, ref):
    ranked, targets = ranked_and_targets(seed)
    rel, n_rel = metrics.relevance_from_sets(torch.tensor(ranked), targets)
    assert metrics.METRICS[name](rel, n_rel, k) == pytest.approx(ref(ranked, targets, k), abs=1e-4)


def test_label_relevance_equals_set_relevance():
    gen = torch.Generator().manual_seed(0)
    gallery_labels = torch.randint(0, 5, (50,), generator=gen)
    query_labels = torch.randint(0, 5, (30,), generator=gen)
    ranked = torch.stack([torch.randperm(50, generator=gen)[:10] for _ in range(30)])
    rel_a, n_a = metrics.relevance_from_labels(ranked, query_labels, gallery_labels)
    targets = [set(torch.nonzero(gallery_labels == q).squeeze(1).tolist()) for q in query_labels]
    rel_b, n_b = metrics.relevance_from_sets(ranked, targets)
    assert torch.equal(rel_a, rel_b) and torch.equal(n_a, n_b)


def test_hand_worked_map_example():
    # relevant {0, 2}; ranking 0, 1, 2 -> AP@3 = (1/1 + 2/3) / 2
    rel, n_rel = metrics.relevance_from_sets(torch.tensor([[0, 1, 2]]), [{0, 2}])
    assert metrics.mean_average_precision(rel, n_rel, 3) == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert metrics.true_recall(rel, n_rel, 1) == pytest.approx(100 / (2 + 1e-5))
    assert metrics.score(rel, n_rel, "hit_rate", [1, 3]) == {"R@1": 100.0, "R@3": 100.0}


def test_true_recall_keeps_queries_without_relevant_images_as_zero():
    """ImageNet-R's official metric: a class with no rendition in a domain scores 0 and stays in
    the mean. Written from get_metrics_imgnet: labels, a full ranking, counts per query."""
    gallery_labels = [1000 + 3, 1000 + 3, 1000 + 5, 3, 5, 7]  # origami renditions of classes 3 and 5; reals
    query_labels = [1000 + 3, 1000 + 5, 1000 + 7]  # class 7 has no origami rendition
    ranking = [[0, 3, 2, 1, 4, 5], [2, 0, 1, 3, 4, 5], [5, 4, 3, 2, 1, 0]]
    expected = {}
    for k in (1, 2, 4):
        total = 0.0
        for q, order in zip(query_labels, ranking):
            num_total = sum(g == q for g in gallery_labels)
            num_correct = sum(gallery_labels[i] == q for i in order[:k])
            total += num_correct / (num_total + 1e-5)
        expected[k] = 100 * total / len(query_labels)
    rel, n_rel = metrics.relevance_from_labels(
        torch.tensor(ranking), torch.tensor(query_labels), torch.tensor(gallery_labels)
    )
    for k, value in expected.items():
        assert metrics.true_recall(rel, n_rel, k) == pytest.approx(value, abs=1e-9)
    assert expected[4] == pytest.approx(
        100 * (2 / 2 + 1 / 1 + 0) / 3, abs=1e-3
    )  # not (1 + 1) / 2: the third query counts


def test_query_without_relevant_images_is_an_error():
    rel, n_rel = metrics.relevance_from_sets(torch.tensor([[0, 1]]), [set()])
    with pytest.raises(ValueError, match="no relevant image"):
        metrics.hit_rate(rel, n_rel, 1)


def test_k_beyond_retrieved_list_is_an_error():
    rel, n_rel = metrics.relevance_from_sets(torch.tensor([[0, 1]]), [{1}])
    with pytest.raises(ValueError, match="at least 5"):
        metrics.hit_rate(rel, n_rel, 5)


def test_topk_matches_full_sort_and_exclusion():
    gen = torch.Generator().manual_seed(1)
    q, g = torch.randn(37, 8, generator=gen), torch.randn(90, 8, generator=gen)
    scores, idx = topk_search(q, g, k=10, chunk_size=7)
    full = (q @ g.T).argsort(dim=1, descending=True)[:, :10]
    assert torch.equal(idx, full)
    assert torch.allclose(scores, (q @ g.T).gather(1, full))
    exclude = full[:, 0].clone()
    exclude[::2] = -1
    _, idx_ex = topk_search(q, g, k=10, exclude=exclude)
    assert torch.equal(idx_ex[::2], full[::2])
    assert not (idx_ex[1::2] == exclude[1::2, None]).any()
    assert torch.equal(idx_ex[1::2, :9], full[1::2, 1:])


def test_topk_errors():
    with pytest.raises(ValueError, match="gallery is empty"):
        topk_search(torch.randn(2, 4), torch.zeros(0, 4), k=1)
    with pytest.raises(ValueError, match="k=6 but the gallery has 5"):
        topk_search(torch.randn(2, 4), torch.randn(5, 4), k=6)
    with pytest.raises(ValueError, match="does not match"):
        topk_search(torch.randn(2, 3), torch.randn(5, 4), k=1)


# -- paired bootstrap and the true-recall ceiling ------------------------------------------------


def _slow_bootstrap(a, b, n_boot, seed):
    """The definition, one resample at a time: resample query indices per group, average the paired
    differences, average over groups; same generator calls as the fast version."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    boots = [0.0] * n_boot
    for x, y in zip(a, b):
        for lo in range(0, n_boot, 1000):
            n = min(1000, n_boot - lo)
            idx = torch.randint(len(x), (n, len(x)), generator=gen)
            for r in range(n):
                boots[lo + r] += sum(float(x[i]) - float(y[i]) for i in idx[r].tolist()) / len(x)
    boots = sorted(v / len(a) for v in boots)
    return boots


def test_paired_bootstrap_matches_the_slow_definition():
    import torch

    from p2w_lib.retrieval.metrics import paired_bootstrap

    gen = torch.Generator().manual_seed(1)
    a = [(torch.rand(n, generator=gen) < 0.4).double() * 100 for n in (7, 11)]
    b = [(torch.rand(n, generator=gen) < 0.3).double() * 100 for n in (7, 11)]
    fast = paired_bootstrap(a, b, n_boot=1500, seed=3)
    slow = torch.tensor(_slow_bootstrap(a, b, 1500, 3), dtype=torch.float64)
    assert fast["ci_low"] == pytest.approx(torch.quantile(slow, 0.025).item(), abs=1e-9)
    assert fast["ci_high"] == pytest.approx(torch.quantile(slow, 0.975).item(), abs=1e-9)
    assert fast["mean"] == pytest.approx(sum(float((x - y).mean()) for x, y in zip(a, b)) / 2)


def test_paired_bootstrap_invariants():
    import torch

    from p2w_lib.retrieval.metrics import paired_bootstrap

    same = [torch.tensor([0.0, 100, 100, 0])]
    assert paired_bootstrap(same, same, n_boot=200) == {
        "mean": 0.0,
        "ci_low": 0.0,
        "ci_high": 0.0,
        "level": 0.95,
        "n_boot": 200,
    }
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(4000, generator=gen) < 0.5).double() * 100
    y = torch.zeros(4000, dtype=torch.float64)
    out = paired_bootstrap([x], [y], n_boot=2000)
    sd = float(x.std()) / 4000**0.5  # normal approximation of the mean's spread
    assert out["ci_low"] < out["mean"] < out["ci_high"]
    assert (out["ci_high"] - out["ci_low"]) == pytest.approx(2 * 1.96 * sd, rel=0.1)
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_bootstrap([x], [y[:10]])


def test_true_recall_ceiling_is_the_score_of_a_perfect_ranking():
    import torch

    from p2w_lib.protocols.domain_conversion import true_recall_ceiling
    from p2w_lib.retrieval.metrics import true_recall

    n_rel = torch.tensor([30, 5, 0, 12])
    # a perfect ranking puts every relevant image first
    rel = torch.stack([torch.arange(50) < n for n in n_rel])  # [Q, 50]
    for k in (10, 50):
        assert true_recall_ceiling(n_rel, [k])[f"R@{k}"] == pytest.approx(true_recall(rel, n_rel, k))
    assert true_recall_ceiling(torch.tensor([30] * 4), [10])["R@10"] == pytest.approx(100 / 3, rel=1e-4)


def test_summary_metrics_mean_and_std_over_seeds():
    from p2w_lib.app.report import sanity_summary, summary_metrics

    doc = {
        "seeds": {
            "0": {
                "methods": {"pic2word": {"R@10": 10.0}, "image_text": {"R@10": 4.0}},
                "paired_difference": {"R@10": {"mean": 6.0, "ci_low": 2.5, "ci_high": 9.0}},
            },
            "1": {
                "methods": {"pic2word": {"R@10": 14.0}, "image_text": {"R@10": 4.0}},
                "paired_difference": {"R@10": {"mean": 10.0, "ci_low": 6.0, "ci_high": 14.0}},
            },
        }
    }
    assert summary_metrics(doc) == {
        "p2w": 12.0,
        "p2w sd": 2.0,
        "img+txt": 4.0,
        "img+txt sd": 0.0,
        "margin": 8.0,
        "margin CI lo": 2.5,
        "seeds": 2,
    }
    tables = {
        0: {"class (photo)": 60.0, "class (sketch)": 90.0, "class (mosaic)": 50.0, "domain": 95.0, "colour": 92.0},
        1: {"class (photo)": 70.0, "class (sketch)": 80.0, "class (mosaic)": 56.0, "domain": 97.0, "colour": 94.0},
    }
    assert sanity_summary(tables) == {
        "clip photo": 65.0,
        "clip worst": 53.0,
        "clip domain": 96.0,
        "clip colour": 93.0,
        "seeds": 2,
    }
