"""DVC sees every change that matters and shows readable results.

- Each notebook stage depends on every project file its notebook runs (its import closure,
  computed from the code here, not kept by hand), and .dvcignore hides none of them.
- Bytecode never changes a stage's dependencies.
- In a fresh copy of the repository, `dvc status` finds the committed lock in step with the code
  and notebooks, `dvc metrics show --md` is a table for one screen, and `dvc plots show` writes to a
  git-ignored folder without warnings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest
import yaml

from tests.import_closure import notebook_closure

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the paper's under the name DVC runs it by (pipelines/paper/dvc.yaml links to pipeline.yaml)
PIPELINES = {"dvc.yaml": ROOT / "dvc.yaml", "pipelines/paper/dvc.yaml": ROOT / "pipelines" / "paper" / "pipeline.yaml"}


def _stages() -> list:
    return list(_stage_params())


def _stage_params():
    for name, path in PIPELINES.items():
        for stage_name, stage in yaml.safe_load(path.read_text())["stages"].items():
            if "run_notebook.sh" in stage["cmd"]:
                yield pytest.param(stage, id=f"{name}:{stage_name}")


def _dvcignore() -> pathspec.PathSpec:
    return pathspec.GitIgnoreSpec.from_lines((ROOT / ".dvcignore").read_text().splitlines())


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", _stages())
def test_stage_depends_on_exactly_the_files_its_notebook_runs(stage):
    """Held against the reference closure of tests/import_closure.py, written apart from the
    generator (p2w_lib/tools/dvc_deps.py): nothing missing, and no package file the stage does not run."""
    notebook = ROOT / stage["cmd"].split()[2].join(("notebooks/", ".py"))
    deps = [next(iter(d)) if isinstance(d, dict) else d for d in stage["deps"]]
    run_files = {"notebooks/run_notebook.sh", "notebooks/offline.html.j2", notebook.relative_to(ROOT).as_posix()}
    needed = notebook_closure(ROOT, notebook) | run_files
    assert not [d for d in deps if d.endswith(".ipynb")], "a session's .ipynb half is never a dependency"
    missing = sorted(f for f in needed if not _covered(f, deps))
    assert not missing, f"run `make dvc-deps`; the stage's deps lack {missing}"
    extra = sorted(d for d in deps if d.startswith("p2w_lib") and d not in needed)
    assert not extra, f"run `make dvc-deps`; the stage does not run {extra}"
    hidden = sorted(f for f in needed if _dvcignore().match_file(f))
    assert not hidden, f".dvcignore hides files the stage runs: {hidden}"


def test_the_reference_closure_reaches_deep_and_stops_at_the_layers():
    from tests.import_closure import closure

    files = closure(ROOT, {"p2w_lib.app.sources"})
    assert "p2w_lib/demo/clip_pretrain.py" in files and "p2w_lib/demo/batches.py" in files  # two imports deep
    assert "p2w_lib/clip/model_configs" in files  # a data file the CLIP loader reads
    assert "p2w_lib/tools/bench.py" not in files and "p2w_lib/app/readme.py" not in files


def test_no_stage_runs_the_readme_writer_or_the_cli():
    """So editing either re-runs no stage and needs no `dvc commit`."""
    for stage in _stages():
        deps = [next(iter(d)) if isinstance(d, dict) else d for d in stage.values[0]["deps"]]
        assert not {"p2w_lib/app/readme.py", "p2w_lib/cli.py", "p2w_lib/tools/bench.py"} & set(deps), stage.id


def test_dvc_deps_check_passes_on_the_repo_and_names_a_stale_stage(tmp_path, capsys):
    from p2w_lib.tools import dvc_deps

    assert dvc_deps.main(["--check"]) == 0
    text = (ROOT / "dvc.yaml").read_text()
    stale = text.replace("      - p2w_lib/clip/prefix_cache.py\n", "", 1)
    assert stale != text
    new, changed = dvc_deps.rewrite(stale)
    assert changed == ["data_prep"] and new == text  # the first stage listing it; regenerated exactly
    moved = text.replace("      - p2w_lib/app/training.py\n", "      - p2w_lib/app/readme.py\n", 1)
    assert moved != text and dvc_deps.rewrite(moved) == (text, ["train_mapper"])


def test_dvcignore_hides_bytecode_and_caches():
    spec = _dvcignore()
    for path in (
        "p2w_lib/__pycache__/pipeline.cpython-311.pyc",
        "p2w_lib/demo/__pycache__/x.pyc",
        "p2w_lib/x.pyc",
        ".pytest_cache/v/cache",
        "notebooks/.ipynb_checkpoints/01-checkpoint.ipynb",
    ):
        assert spec.match_file(path), path
    assert not spec.match_file("p2w_lib/app/training.py")


def _run(cmd, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """The repository as a clone would hold it: the tracked files (as they are in the working tree),
    plus bytecode a user's Python writes on first import."""
    repo = tmp_path_factory.mktemp("clone") / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, tracked.split("\0")):
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    _run(["git", "init", "-q"], repo)
    _run([sys.executable, "-c", "import compileall, sys; compileall.compile_dir('p2w_lib', quiet=1)"], repo)
    assert list((repo / "p2w_lib").rglob("*.pyc"))
    return repo


def test_committed_lock_is_in_step_with_code_and_notebooks_in_a_fresh_clone(fresh_copy):
    import json

    status = json.loads(_run([BIN / "dvc", "status", "--json", "dvc.yaml"], fresh_copy).stdout)
    # `dvc status` as a user types it sees the demo pipeline only: the paper's is not linked in a clone
    everything = json.loads(_run([BIN / "dvc", "status", "--json"], fresh_copy).stdout)
    assert set(everything) == set(status) and not (fresh_copy / "pipelines" / "paper" / "dvc.yaml").exists()
    stale = {}
    for stage, changes in status.items():
        for change in changes:
            for kind in ("changed deps", "changed outs"):
                for path, what in change.get(kind, {}).items() if isinstance(change, dict) else ():
                    # data/ and models/ are DVC-cached, absent from a clone: "deleted" is expected there
                    if not (what in ("deleted", "not in cache") and path.startswith(("data/", "models/"))):
                        stale.setdefault(stage, []).append(f"{kind}: {what}: {path}")
    assert not stale, f"dvc.lock out of step with the committed code or results (re-run `make reproduce`): {stale}"


def test_committed_metrics_show_as_one_readable_table(fresh_copy):
    proc = _run([BIN / "dvc", "metrics", "show", "--md"], fresh_copy)
    assert proc.stderr.strip() == "", proc.stderr
    lines = proc.stdout.strip().splitlines()
    # Wide (two columns per query method: mean and spread over seeds; with both Combiners, twelve
    # methods and the oracle) but one table, one row per file.
    assert 3 <= len(lines) <= 10 and max(map(len, lines)) <= 420, proc.stdout
    assert all("summary/" in line for line in lines[2:])  # per-seed detail is not a DVC metric
    assert "e-" not in proc.stdout and not any(
        len(cell.strip()) > 8 for line in lines[2:] for cell in line.split("|")[2:]
    )


def test_committed_plots_show_every_figure_offline_in_an_ignored_folder(fresh_copy):
    import re

    proc = _run([BIN / "dvc", "plots", "show"], fresh_copy)
    assert "WARNING" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    page = (fresh_copy / "dvc_plots" / "index.html").read_text()
    fetched = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"'\s>]+""", page)
    assert not fetched and "<script" not in page, f"the page needs the network: {fetched[:3]}"
    figures = sorted(p.name for p in (fresh_copy / "results" / "figures").glob("*.png"))
    assert len(figures) >= 10 and all(name in page for name in figures)  # every figure, the four loss curves too
    assert {"clip_pretrain_loss.png", "mapper_loss.png", "lincir_loss.png", "searle_loss.png"} <= set(figures)
    assert page.count("<img") == len(figures)
    ignored = subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=ROOT)
    assert ignored.returncode == 0, "dvc_plots/ must be git-ignored"
