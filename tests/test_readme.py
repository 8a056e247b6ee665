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


def test_every_relative_link_of_the_readme_and_docs_resolves():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_docs_pages_say_what_they_are_for():
    for page in ("pipeline", "methods", "paper", "library", "performance", "reliability"):
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
