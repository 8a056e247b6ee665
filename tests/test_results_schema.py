"""The typed results documents: what a grouped document declares, and clear errors for files that
are not results documents."""

from __future__ import annotations

import json

import pytest

from p2w_lib.app.report import load_result, metrics_frame
from p2w_lib.protocols.common import methods_document, results_document
from p2w_lib.protocols.results_schema import group_key, groups


def test_a_grouped_document_names_its_groups_in_order():
    per_group = {"toy": {"pic2word": {"R@10": 4.0}}, "cartoon": {"pic2word": {"R@10": 2.0}}}
    doc = results_document("demo", 0, "true_recall", per_group, "per_domain")
    assert group_key(doc) == "per_domain" and groups(doc) == ["toy", "cartoon"]
    assert doc["methods"]["pic2word"]["R@10"] == 3.0
    frame = metrics_frame(doc, keys=("R@10",))
    assert list(frame.columns) == ["avg R@10", "toy R@10", "cartoon R@10"]  # the document's order, no guessing
    flat = methods_document("paper", 0, "hit_rate", {"slerp": {"R@1": 1.0}})
    assert group_key(flat) is None and groups(flat) == []


def test_files_that_are_not_results_documents_are_named(tmp_path):
    bad = tmp_path / "cirr.json"
    bad.write_text(json.dumps({"R@10": 3.0}))
    with pytest.raises(ValueError, match=r"cirr.json: not a results document .*dvc repro"):
        load_result(bad)
    old = tmp_path / "domain_conversion.json"
    old.write_text(
        json.dumps({"profile": "demo", "seed": 0, "metric": "true_recall", "methods": {}, "group_key": "per_domain"})
    )
    with pytest.raises(ValueError, match=r"domain_conversion.json: a grouped results document needs both"):
        load_result(old)
    skipped = tmp_path / "circo.json"
    skipped.write_text(json.dumps({"profile": "paper", "seed": 0, "skipped": "paper_data.benchmarks.circo is false"}))
    assert load_result(skipped)["skipped"].startswith("paper_data")
