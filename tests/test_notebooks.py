"""Notebooks are thin, output-free and parametrised; saving one as JupyterLab does changes nothing DVC
hashes; `dvc repro` runs them all on the tiny profile."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from p2w_lib.app.pipelines import link_paper_pipeline

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))  # the committed halves of the pairs
BIN = Path(sys.executable).parent
METHODS = {
    "image_only",
    "text_only",
    "image_text",
    "pic2word",
    "lincir",
    "slerp",
    "searle",
    "searle_oti",
    "combiner_fashion_iq",
    "combiner_cirr",
}


def test_the_numbered_notebooks():
    # 03 makes the query methods' networks and tokens (Pic2Word's mapper, LinCIR's and SEARLE's phi,
    # SEARLE-OTI's token store of the query images, the supervised Combiner), each its own DVC stage
    assert [n.stem for n in NOTEBOOKS][2:7] == [
        "03_searle_oti",
        "03_train_combiner",
        "03_train_lincir",
        "03_train_mapper",
        "03_train_searle",
    ]
    assert [n.stem[:2] for n in NOTEBOOKS] == ["01", "02", "03", "03", "03", "03", "03", "04", "05", "06", "07", "08"]


def test_only_the_text_half_of_each_notebook_is_committed():
    """The .ipynb halves hold a session's outputs: git-ignored, never a DVC dependency."""
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.endswith(".ipynb")]
    assert sorted(f"notebooks/{n.name}" for n in NOTEBOOKS) == sorted(
        f for f in tracked if f.endswith(".py") and Path(f).name[:2].isdigit()
    )
    ignored = subprocess.run(
        ["git", "check-ignore", "notebooks/05_fashion_iq.ipynb"], cwd=ROOT, capture_output=True, text=True
    )
    assert ignored.returncode == 0
    assert 'formats = "ipynb,py:percent"' in (ROOT / "notebooks" / "jupytext.toml").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_thin_and_parametrised(path):
    book = jupytext.read(path)
    # what JupyterLab writes on save, so that saving rewrites nothing (the test below)
    assert book.metadata["kernelspec"] == {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    assert book.metadata["jupytext"]["text_representation"]["jupytext_version"] == jupytext.__version__
    code = [c for c in book.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "profile = None" in tagged[0].source and "results_dir = None" in tagged[0].source
    if path.stem[:2] in ("02", "03", "04", "05", "07", "08"):
        assert "seeds = None" in tagged[0].source
    if path.stem[:2] in ("04", "05", "06", "07", "08"):
        assert "mapper_checkpoint = None" in tagged[0].source  # evaluate without retraining
    prose = [c for c in book.cells if c.cell_type == "markdown"]
    assert len(prose) >= 2, "say between cells what the reader is looking at"
    assert book.cells[0].cell_type == "markdown"  # each notebook opens by explaining its step
    # statements, not lines: the formatter spreads one call over several lines
    assert all(len(ast.parse(c.source).body) <= 6 for c in code if c is not tagged[0]), (
        "logic belongs in p2w_lib, not in notebook cells"
    )

    assert all(isinstance(node, ast.Assign) for node in ast.parse(tagged[0].source).body), (
        "parameters are plain assignments"
    )


def test_every_notebook_has_a_dvc_stage():
    """Every notebook in the demo pipeline (08: its CIRR analogue) and in the paper pipeline (but 02:
    the paper profile's CLIP is a release)."""
    demo = " ".join(s["cmd"] for s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values())
    paper = " ".join(
        s["cmd"] for s in yaml.safe_load((ROOT / "pipelines/paper/pipeline.yaml").read_text())["stages"].values()
    )
    assert all(f"run_notebook.sh {n.stem} " in demo for n in NOTEBOOKS)
    assert "run_notebook.sh 08_more_benchmarks paper " in paper


def save_as_jupyterlab_does(root: Path, notebook: str) -> dict:
    """Open notebooks/<notebook>.py as JupyterLab does (jupytext's contents manager, which the app
    group installs into the server), give it what a session adds (outputs, execution counts, the
    kernel's language_info, cell timing metadata), and save it; returns the saved notebook."""
    import asyncio

    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    manager = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(root))

    async def session():
        book = (await manager.get(f"notebooks/{notebook}.py", content=True))["content"]
        book["metadata"]["language_info"] = {"name": "python", "version": "3.11", "mimetype": "text/x-python"}
        for n, cell in enumerate(c for c in book["cells"] if c["cell_type"] == "code"):
            cell["execution_count"] = n + 1
            cell["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text=f"output {n}\n")]
            cell["metadata"]["execution"] = {"iopub.execute_input": "2026-12-07T11:00:00.000Z"}
        await manager.save({"type": "notebook", "format": "json", "content": book}, f"notebooks/{notebook}.ipynb")
        return book

    return asyncio.run(session())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_source_is_exactly_what_jupytext_writes_for_it(path):
    """Else the first save in JupyterLab would rewrite it (and re-run its stage)."""
    assert jupytext.writes(jupytext.read(path), fmt="py:percent") == path.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saving_a_notebook_in_jupyterlab_leaves_what_dvc_hashes_unchanged(path, tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    before = path.read_bytes()
    save_as_jupyterlab_does(tmp_path, path.stem)
    assert (tmp_path / "notebooks" / path.name).read_bytes() == before  # the stage's dependency
    saved = nbformat.read(tmp_path / "notebooks" / f"{path.stem}.ipynb", as_version=4)
    assert any(c.outputs for c in saved.cells if c.cell_type == "code")  # the session's half got them


def test_the_same_save_with_an_edited_cell_changes_the_source():
    """The check above can fail: an edit to a cell's code reaches the .py."""
    book = jupytext.read(NOTEBOOKS[0])
    book.cells[-1].source += "\nprint('edited')"
    assert "print('edited')" in jupytext.writes(book, fmt="py:percent")


def _repo_copy(tmp_path: Path, profile: str) -> Path:
    """A throwaway git+DVC repository with this project's pipeline, set to `profile`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("params.yaml", "dvc.yaml", ".dvcignore", "notebooks", "pipelines"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("*.ipynb", "dvc.yaml", "dvc.lock"))
        else:
            shutil.copy(src, repo / name)
    if profile == "paper":
        link_paper_pipeline(repo)
    shutil.copytree(ROOT / "p2w_lib", repo / "p2w_lib", ignore=shutil.ignore_patterns("__pycache__"))
    params = repo / "params.yaml"
    text = params.read_text().replace("\nprofile: demo", f"\nprofile: {profile}", 1)
    if profile != "paper":  # the demo pipeline runs demo_profile; the paper profile leaves it at demo
        text = text.replace("\ndemo_profile: demo", f"\ndemo_profile: {profile}", 1)
    params.write_text(text)
    run(["git", "init", "-q"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], repo)
    run([BIN / "dvc", "init", "-q"], repo)
    return repo


def run(cmd, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def check_schema(result: dict, group_key: str, metric: str) -> None:
    assert result["profile"] == "tiny" and result["seed"] == 0 and result["metric"] == metric
    assert METHODS <= set(result["methods"])
    for scores in result["methods"].values():
        assert {"R@10", "R@50", group_key} <= set(scores)
        assert all({"R@10", "R@50"} <= set(g) for g in scores[group_key].values())


@pytest.mark.slow
def test_dvc_repro_runs_every_notebook_then_nothing(tmp_path):
    repo = _repo_copy(tmp_path, "tiny")
    run([BIN / "dvc", "repro"], repo)
    results = repo / "results"
    assert not (results / "paper").exists()  # the paper pipeline's stages never run here
    for n in NOTEBOOKS:
        executed = nbformat.read(results / "notebooks" / f"{n.stem}.ipynb", as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
        assert (results / "notebooks" / f"{n.stem}.html").is_file()
    check_schema(json.loads((results / "metrics" / "domain_conversion.json").read_text()), "per_domain", "true_recall")
    check_schema(json.loads((results / "metrics" / "fashion_iq.json").read_text()), "per_category", "hit_rate")
    cirr = json.loads((results / "metrics" / "cirr.json").read_text())
    assert METHODS <= set(cirr["methods"]) and cirr["n_queries"] == 12
    assert all({"R@1", "R@10", "Rs@1", "Rs@3"} <= set(s) for s in cirr["methods"].values())  # 24 images: no R@50
    assert not (results / "metrics" / "circo.json").exists()  # no CIRCO analogue: no results file at all
    for fig in (
        "world_samples",
        "clip_pretrain_loss",
        "mapper_loss",
        "combiner_loss",
        "domain_conversion",
        "fashion_iq",
        "cirr",
        "qualitative_domain_conversion",
        "qualitative_fashion_iq",
        "qualitative_cirr",
        "try_your_own",
    ):
        assert (results / "figures" / f"{fig}.png").stat().st_size > 1000
    from tests.test_executed_notebooks import check_executed_notebook

    for stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].values():
        check_executed_notebook(repo, stage)  # every figure inline, no progress fragments, no machine paths
    assert not list((repo / "runs" / "partial").glob("*.ipynb"))  # successful runs leave nothing behind

    again = run([BIN / "dvc", "repro"], repo)
    assert "Running stage" not in again.stdout
    assert "up to date" in run([BIN / "dvc", "status", "dvc.yaml"], repo).stdout
    # as a user types it: the paper pipeline is out of a demo clone's way
    assert run([BIN / "dvc", "status"], repo).stdout.strip() == "Data and pipelines are up to date."
    # stepping through notebooks in JupyterLab (outputs, kernel metadata) leaves DVC clean
    for n in NOTEBOOKS:
        save_as_jupyterlab_does(repo, n.stem)
    assert run([BIN / "dvc", "status"], repo).stdout.strip() == "Data and pipelines are up to date."

    params = repo / "params.yaml"
    tiny = yaml.safe_load(params.read_text())
    tiny["profiles"]["tiny"]["train"]["lr"] = 0.002
    params.write_text(yaml.safe_dump(tiny, sort_keys=False))
    status = run([BIN / "dvc", "status", "dvc.yaml"], repo).stdout
    assert "train_mapper" in status and "data_prep" not in status and "pretrain_clip" not in status

    # JupyterLab starts kernels in notebooks/: the same notebook must work from there too.
    run(
        [
            BIN / "papermill",
            "notebooks/07_try_your_own.ipynb",  # the half the save above wrote
            tmp_path / "from_notebooks_dir.ipynb",
            "-p",
            "profile",
            "tiny",
            "--cwd",
            "notebooks",
        ],
        repo,
    )


@pytest.mark.slow
def test_failing_notebook_fails_loudly_and_keeps_its_partial_copy_apart(tmp_path):
    repo = _repo_copy(tmp_path, "tiny")
    proc = run(["bash", "notebooks/run_notebook.sh", "03_train_mapper", "no_such_profile"], repo, check=False)
    assert proc.returncode != 0
    assert "PapermillExecutionError" in proc.stderr and "no_such_profile" in proc.stderr
    assert not list((repo / "results" / "notebooks").glob("*.ipynb"))
    partial = repo / "runs" / "partial" / "03_train_mapper.ipynb"
    assert f"{partial.relative_to(repo)}" in proc.stderr  # the message says where to look
    failed = nbformat.read(partial, as_version=4)
    assert any(o.get("output_type") == "error" for c in failed.cells if c.cell_type == "code" for o in c.outputs)
