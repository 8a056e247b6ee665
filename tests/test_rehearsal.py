"""The dress rehearsal of the paper pipeline on the real annotation files (../shared/reference),
reduced to the stages that read them: placeholder images at every path they name, a tiny random
CLIP, `dvc repro` through the real pipeline file. Skipped where the reference files are absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2w_lib.tools.rehearsal import run_rehearsal
from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = SHARED / "reference"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all((REFERENCE / d).is_dir() for d in ("pic2word-imagenet-r", "fashion-iq", "cirr", "circo")),
        reason="../shared/reference (the real annotation files) is not present",
    ),
]


def test_reduced_rehearsal_on_the_real_annotation_files(tmp_path):
    summary = run_rehearsal(ROOT, REFERENCE, tmp_path / "rehearsal", reduced=True)
    out = summary["outputs"]
    dc = out["domain_conversion"]
    # Pic2Word's lists: 153, 106, 144, 142 of 200 classes have renditions (50 queries a class)
    assert dc["n_queries"] == 10_000 and dc["n_gallery"] == 16_983 and dc["queries"] == "all"
    assert dc["n_queries_without_relevant"] == {"cartoon": 2350, "origami": 4700, "toy": 2800, "sculpture": 2900}
    triplets = {
        c: len(json.loads((REFERENCE / "fashion-iq" / "captions" / f"cap.{c}.val.json").read_text()))
        for c in ("dress", "shirt", "toptee")
    }
    assert {c: v["evaluable"] for c, v in out["fashion_iq"]["counts"].items()} == triplets
    assert out["cirr"]["n_queries"] == 4181 and out["circo"]["n_queries"] == 220
    assert out["coco_objects"]["prompt"] == "with_class"
    # check_outputs has already applied the servers' rules; the size rule at the real scale:
    assert 3_000_000 < out["submission_bytes"]["cirr_test1_recall_pic2word.json"] <= 5_000_000
    repo = Path(summary["repo"])
    assert not (repo / "results" / "paper" / "figures" / "qualitative_fashion_iq.png").exists()  # reduced: no figures
