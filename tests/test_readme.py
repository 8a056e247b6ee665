"""The README a newcomer reads: short, its links resolve, and its library example runs as printed
(on the tiny random CLIP and a small recipe in place of ViT-L/14 and the paper's, the only edits)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import write_images

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_is_under_15_kb_with_the_library_example_near_the_top():
    assert len(README.encode()) < 15_000
    assert README.index("```python") < len(README) // 4


def _prose(text: str, blocks) -> str:
    """`text` without its generated blocks."""
    for start, end in blocks:
        head, rest = text.split(start, 1)
        text = head + rest.split(end, 1)[1]
    return text


def test_committed_readme_says_what_the_results_files_say():
    """Every generated block, regenerated from results/metrics, is the committed one."""
    from p2w_lib.app.readme import generated_parts

    for (start, end), body in generated_parts(ROOT / "results").items():
        assert README.count(start) == 1 and README.count(end) == 1, start
        committed = README.split(start, 1)[1].split(end, 1)[0].strip("\n")
        assert committed == body, (
            f"the README's {start} block disagrees with results/: run `python -m p2w_lib report --write-readme`"
        )


def test_committed_docs_blocks_say_what_the_results_files_say():
    from p2w_lib.app.readme import docs_parts

    for page, blocks in docs_parts(ROOT / "results").items():
        text = (ROOT / page).read_text()
        for (start, end), body in blocks.items():
            assert text.count(start) == 1 and text.count(end) == 1, (page, start)
            committed = text.split(start, 1)[1].split(end, 1)[0].strip("\n")
            assert committed == body, (
                f"{page}'s {start} block disagrees with results/: run `python -m p2w_lib report --write-readme`"
            )


def test_committed_demo_results_meet_the_floors():
    """Issue 27's floors, on the mean over seeds of the committed run (app/floors.py)."""
    from p2w_lib.app.floors import check_floors

    checks = check_floors(ROOT / "results")
    assert len(checks) == 3 and all(c.met for c in checks), [c.line() for c in checks]


def test_a_floor_below_its_minimum_is_reported_as_not_met(tmp_path):
    import json

    from p2w_lib.app.floors import check_floors

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    acc = {"zero_shot_accuracy": {"0": {"class (photo)": 70.0}, "1": {"class (photo)": 48.0}}}  # mean 59
    (metrics / "demo_clip_sanity.json").write_text(json.dumps(acc))
    dc = {s: {"methods": {"pic2word": {"R@10": p}, "image_text": {"R@10": 4.0}}} for s, p in (("0", 9.0), ("1", 11.0))}
    (metrics / "domain_conversion_all_seeds.json").write_text(json.dumps({"seeds": dc}))  # 10 / 4 = 2.5x
    fiq = {s: {"comparisons": {"R@10": {"pic2word": {"ci_low": lo}}}} for s, lo in (("0", 4.0), ("1", 7.0))}
    (metrics / "fashion_iq_all_seeds.json").write_text(json.dumps({"seeds": fiq}))  # mean 5.5
    met = [c.met for c in check_floors(tmp_path)]
    assert met == [False, True, True]
    assert "NOT met" in check_floors(tmp_path)[0].line()


def test_the_transfer_table_puts_every_method_on_every_benchmark():
    """Rows: the methods every benchmark scored; cells: the mean over seeds, then each seed's value."""
    from p2w_lib.app.readme import transfer_table

    def doc(values: dict[str, tuple[float, float]], key: str = "R@10") -> dict:
        return {"seeds": {str(s): {"methods": {m: {key: v[s]} for m, v in values.items()}} for s in (0, 1)}}

    table = transfer_table(
        {
            "A": doc({"pic2word": (10.0, 20.0), "combiner_cirr": (30.0, 50.0), "only_here": (1.0, 1.0)}),
            "B": doc({"pic2word": (4.0, 6.0), "combiner_cirr": (2.0, 2.0)}, key="mAP@10"),
        },
        {"B": "mAP@10"},
    )
    toy = transfer_table({"A": doc({"pic2word": (1.0, 2.0)}, key="R@1")})  # a gallery smaller than 10
    assert toy.splitlines()[-1] == "| Pic2Word | n/a |"
    assert table.splitlines() == [
        "| method | A R@10 | B mAP@10 |",
        "|---|---|---|",
        "| Pic2Word | 15.00 (10.00 / 20.00) | 5.00 (4.00 / 6.00) |",
        "| Combiner (trained on CIRR) | 40.00 (30.00 / 50.00) | 2.00 (2.00 / 2.00) |",
    ]


# A result in prose would be a decimal, a percentage, a ratio or a margin; the numbers the prose may
# hold are definitions (chance levels, ceilings) and versions, listed here.
RESULT_LIKE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:%|x\b|points\b)|(?<![\w.])\d+\.\d+(?![\w.])")
DEFINITIONS = {"3.11", "2302.03084", "6.25%", "20%", "12.5%", "33.3%", "100%", "33.3", "95%", "2 x"}


def _result_like(text: str) -> list[str]:
    return [m.group(0) for m in RESULT_LIKE.finditer(text) if m.group(0).strip() not in DEFINITIONS]


def test_no_result_is_written_by_hand_in_the_readme_or_the_notebooks_text():
    from p2w_lib.app.readme import generated_parts

    found = {"README.md": _result_like(_prose(README, generated_parts(ROOT / "results")))}
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        import jupytext

        text = "\n".join(c.source for c in jupytext.read(notebook).cells if c.cell_type == "markdown")
        found[notebook.name] = _result_like(text)
    assert not {k: v for k, v in found.items() if v}, found
    assert _result_like("Pic2Word scores 11.2 against 3.6") == ["11.2", "3.6"]  # the check can fail
    assert _result_like("a margin of +13 points, 2.1x image + text, 35% of the oracle") == ["13 points", "2.1x", "35%"]


def test_every_relative_link_of_the_readme_and_docs_resolves():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_docs_pages_say_what_they_are_for():
    for page in ("pipeline", "methods", "paper", "library", "performance", "reliability", "reproducibility", "results"):
        assert "What this page is for:" in (ROOT / "docs" / f"{page}.md").read_text()[:400], page


@pytest.mark.slow
def test_the_library_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    swaps = {
        'ClipConfig(model="ViT-L-14", pretrained="openai")': 'ClipConfig(model="p2w-tiny", pretrained=None)',
        "TrainConfig()": "TrainConfig(batch_size=8, epochs=1, warmup_steps=1, num_workers=0)",
        "MapperConfig()": "MapperConfig(hidden_dim=32)",
    }
    for paper, tiny in swaps.items():
        assert paper in code, paper
        code = code.replace(paper, tiny)
    monkeypatch.chdir(tmp_path)
    names = {
        "train_images": write_images(tmp_path / "train", 16, seed=0),
        "gallery_images": write_images(tmp_path / "gallery", 12, seed=1),
        "query_images": write_images(tmp_path / "queries", 3, seed=2),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), names)
    assert names["top10"].shape == (3, 10) and names["scores"].shape == (3, 10)
    assert set(names["queries"]) >= {"image_only", "text_only", "image_text", "slerp", "pic2word"}
    assert torch.all(names["scores"][:, :-1] >= names["scores"][:, 1:])  # best first


def test_the_stage_split_is_read_from_the_executed_notebooks(tmp_path):
    import json

    from p2w_lib.app.readme import stage_minutes, timing_section

    (tmp_path / "notebooks").mkdir()
    for name, seconds in (("01_data_prep", 90.0), ("02_pretrain_clip", 600.0)):
        doc = {"metadata": {"papermill": {"duration": seconds}}, "cells": []}
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text(json.dumps(doc))
    (tmp_path / "notebooks" / "scratch.ipynb").write_text("{}")  # not a numbered stage notebook: ignored
    assert stage_minutes(tmp_path) == {"data_prep": 1.5, "pretrain_clip": 10.0}
    assert "took 12 min on 2 cores: data_prep 1.5, pretrain_clip 10.0 (" in timing_section(tmp_path)
    (tmp_path / "notebooks" / "03_train_mapper.ipynb").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match="03_train_mapper.ipynb: no papermill duration"):
        stage_minutes(tmp_path)
