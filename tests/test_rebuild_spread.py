"""The rebuild report reads two results folders and says what moved and which verdicts changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from p2w_lib.tools import rebuild_spread

ROOT = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(ROOT / "results" / "metrics", out / "metrics")
    return out


def test_an_identical_rebuild_moves_nothing_and_a_flipped_interval_changes_a_verdict(tmp_path):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    text = rebuild_spread.report(a, b, "same")
    assert "Largest move of an R@10: 0.00 points; every verdict held." in text
    path = b / "metrics" / "fashion_iq_all_seeds.json"
    doc = json.loads(path.read_text())
    seed = next(iter(doc["seeds"]))
    doc["seeds"][seed]["methods"]["pic2word"]["R@10"] -= 3.5
    doc["seeds"][seed]["comparisons"]["R@10"]["pic2word"] = {"mean": 1.0, "ci_low": -0.5, "ci_high": 2.5}
    path.write_text(json.dumps(doc))
    text = rebuild_spread.report(a, b, "perturbed")
    assert "Largest move of an R@10: 3.50 points" in text
    assert "Fashion-IQ analogue: Pic2Word above -> no clear difference" in text


def test_results_without_comparisons_are_refused_with_what_to_do(tmp_path, capsys):
    a = _copy(tmp_path, "a")
    path = a / "metrics" / "domain_conversion_all_seeds.json"
    doc = json.loads(path.read_text())
    for run in doc["seeds"].values():
        run.pop("comparisons")
    path.write_text(json.dumps(doc))
    assert rebuild_spread.main([str(a), str(ROOT / "results")]) == 2
    assert "re-run its stage" in capsys.readouterr().err
    with pytest.raises(ValueError):
        rebuild_spread.report(a, a, "x")
