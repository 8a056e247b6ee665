"""The published numbers: every row names a registry method, a registry benchmark and metrics our
protocols report, and the reports print each beside ours with its source."""

from __future__ import annotations

import math

import pytest

from p2w_lib.app.benchmarks import BENCHMARKS
from p2w_lib.app.report import markdown_table, paper_comparison, published_sources
from p2w_lib.methods.registry import QUERY_METHODS
from p2w_lib.protocols.published import PIC2WORD_PAPER, PUBLISHED, SPLITS, published_for

# What each protocol reports (protocols/*.py), in the keys the published rows use.
REPORTED = {
    "cirr": {"R@1", "R@5", "R@10", "R@50"},
    "circo": {"mAP@5", "mAP@10", "mAP@25", "mAP@50"},
    "fashion_iq": {"R@10", "R@50"},
    "domain_conversion": {"R@10", "R@50"},
    "coco_objects": {"R@1", "R@5", "R@10"},
}


@pytest.mark.parametrize("pub", PUBLISHED, ids=lambda p: f"{p.method}:{p.label or 'pic2word-paper'}")
def test_every_row_names_what_we_run(pub):
    assert pub.method in QUERY_METHODS and pub.source and pub.checked
    for task, scores in pub.scores.items():
        assert task in BENCHMARKS and task in SPLITS
        assert set(scores) <= REPORTED[task], (task, set(scores) - REPORTED[task])
        assert all(0 < v < 100 for v in scores.values())


def test_the_pic2word_paper_rows_are_its_tables():
    rows = {p.method: p.scores for p in PUBLISHED if p.source.startswith("Saito")}
    for task, methods in PIC2WORD_PAPER.items():
        for method, scores in methods.items():
            assert rows[method][task] == scores


def test_each_method_sits_beside_its_published_rows():
    ours = {m: {k: 1.0 for k in REPORTED["cirr"]} for m in QUERY_METHODS}
    frame = paper_comparison({"methods": ours}, "cirr")
    assert frame.loc["SEARLE-XL: published, CIRR test1", "R@1"] == 24.24
    assert frame.loc["SEARLE: ours, CIRR val", "R@1"] == 1.0
    assert math.isnan(frame.loc["LinCIR: published, CIRR test1", "R@50"])  # not published: not invented
    assert "| LinCIR: published, CIRR test1 | 25.04 | 53.25 | 66.68 | – |" in markdown_table(frame)
    assert not any("Slerp" in i for i in frame.index)  # no published Slerp row without a checked copy
    assert len(published_sources("cirr")) == len(published_for("cirr"))
    # A method we did not run gets no row; a benchmark nobody published gets an empty frame.
    assert not any(
        i.startswith("LinCIR") for i in paper_comparison({"methods": {"pic2word": ours["pic2word"]}}, "cirr").index
    )
    assert paper_comparison({"skipped": "no data"}, "cirr").empty
