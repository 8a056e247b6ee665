"""The executed notebooks a user opens (results/notebooks/*.ipynb and .html) show every figure their
stage writes, inline, and read cleanly: no progress-bar fragments, no paths of the machine that ran them."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from PIL import Image

from p2w_lib.app.notebook_outputs import (
    WIDGET_VIEW,
    collapse_carriage_returns,
    embedded_images,
    tidy_notebook,
)

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _outs(stage: dict) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]


def _aspect(width: int, height: int) -> float:
    return width / height


def check_executed_notebook(repo: Path, stage: dict) -> None:
    outs = _outs(stage)
    notebook = repo / next(o for o in outs if o.endswith(".ipynb"))
    figures = [repo / o for o in outs if o.endswith(".png")]
    images = [Image.open(io.BytesIO(data)) for data in embedded_images(notebook)]
    for image in images:  # a real figure, not a placeholder icon
        assert image.width >= 300 and image.height >= 100, f"{notebook}: a {image.size} image is no figure"
        assert len(image.convert("RGB").getcolors(1 << 24)) > 20, f"{notebook}: an image of one or two colours"
    for figure in figures:  # the saved file and an inline image are the same drawing (same shape)
        saved = Image.open(figure)
        assert any(abs(_aspect(*i.size) / _aspect(*saved.size) - 1) < 0.04 for i in images), (
            f"{notebook}: {figure.name} is saved but not shown inline"
        )
    book = nbformat.read(notebook, as_version=4)
    text = "".join(
        o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "\r" not in text, f"{notebook}: progress-bar fragments"
    assert "TqdmWarning" not in text and sys.prefix not in text and str(repo.resolve()) not in text
    html = notebook.with_suffix(".html").read_text()
    assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64,", html)) >= len(figures)
    assert "\r" not in html and sys.prefix not in html and len(html) < 3_000_000
    check_offline(notebook, book, html)


def check_offline(notebook: Path, book, html: str) -> None:
    """Everything the page shows is in it: no script, stylesheet or widget manager from the network,
    and no widget whose view needs one (its plain-text form stays)."""
    fetched = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"'\s>]+""", html)
    assert not fetched, f"{notebook.with_suffix('.html')} loads {fetched[:3]}"
    assert "unpkg.com" not in html and "cdnjs" not in html and "widgets" not in book.metadata
    views = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    assert not views, f"{notebook}: a widget view that only a live kernel or a CDN can draw"
    assert [c.id for c in book.cells] == [f"cell-{i:02d}" for i in range(len(book.cells))]  # stable across runs


def test_committed_composer_notebook_says_what_the_live_widget_shows():
    book = nbformat.read(ROOT / "results" / "notebooks" / "07_try_your_own.ipynb", as_version=4)
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in book.cells[-1].outputs)
    assert shown.startswith("Interactive composer: the top ") and "JupyterLab" in shown
    assert (
        "VBox(" not in shown
        and "Interactive composer" in (ROOT / "results" / "notebooks" / "07_try_your_own.html").read_text()
    )


@pytest.mark.parametrize("name", [n for n, s in STAGES.items() if "run_notebook.sh" in s["cmd"]])
def test_committed_executed_notebook_shows_every_figure_and_reads_cleanly(name):
    check_executed_notebook(ROOT, STAGES[name])


def test_collapse_carriage_returns_keeps_what_a_terminal_shows():
    bar = "\r  0%|          | 0/4\r 50%|#####     | 2/4\r100%|##########| 4/4\n"
    assert collapse_carriage_returns("loading\n" + bar + "done\n") == "loading\n100%|##########| 4/4\ndone\n"
    assert collapse_carriage_returns("no bars\n") == "no bars\n"


def test_tidy_notebook_merges_streams_and_scrubs_machine_paths(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    venv = sys.prefix
    cell = new_code_cell(
        "x",
        outputs=[
            new_output("stream", name="stderr", text=f"{venv}/lib/tqdm/auto.py:21: TqdmWarning\n"),
            new_output("stream", name="stderr", text="\rtrain:  10%|#\rtrain: 100%|##########|"),
            new_output("stream", name="stderr", text="\n"),
            new_output(
                "execute_result",
                data={"text/plain": f"PosixPath('{tmp_path.resolve()}/results/x.png')"},
                execution_count=1,
            ),
        ],
    )
    path = tmp_path / "book.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    tidy_notebook(path, repo_root=tmp_path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [o.output_type for o in outputs] == ["stream", "execute_result"]
    assert outputs[0].text == "<venv>/lib/tqdm/auto.py:21: TqdmWarning\ntrain: 100%|##########|\n"
    assert outputs[1].data["text/plain"] == "PosixPath('./results/x.png')"


def test_tidy_notebook_keeps_a_widgets_words_and_numbers_the_cells(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    view = {WIDGET_VIEW: {"model_id": "abc", "version_major": 2}, "text/plain": "the composer, in words"}
    book = new_notebook(
        cells=[new_markdown_cell("m"), new_code_cell("w", outputs=[new_output("execute_result", data=view)])]
    )
    book.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path = tmp_path / "book.ipynb"
    nbformat.write(book, path)
    tidy_notebook(path, repo_root=tmp_path)
    tidied = nbformat.read(path, as_version=4)
    assert "widgets" not in tidied.metadata and [c.id for c in tidied.cells] == ["cell-00", "cell-01"]
    assert tidied.cells[1].outputs[0].data == {"text/plain": "the composer, in words"}
