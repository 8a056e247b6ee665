"""Each DVC stage's code dependencies, derived from the code: `python -m p2w_lib.tools.dvc_deps [--check]`.

A stage runs one notebook (`bash notebooks/run_notebook.sh NAME ...`), and what that run executes is
the import closure of the notebook's cells (notebooks/NAME.py, the percent-format half of each
notebook pair, is plain Python) plus the tidying run_notebook.sh runs after them
(core/import_graph.py). This writes exactly those files into the stage's `deps` in dvc.yaml and
pipelines/paper/pipeline.yaml, in place of whatever `p2w_lib...` entries were there, and leaves every
other line (comments, data and model dependencies, outputs) as it is. So an edit to the README
writer or the CLI re-runs no stage, and an edit to a module that a stage runs always re-runs it.
`--check` changes nothing and exits 1 naming each stage whose list disagrees (tests and CI run it).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from p2w_lib.app.pipelines import DEMO, PAPER_SOURCE
from p2w_lib.core.import_graph import ROOT, closure, imported_names

PIPELINES = (DEMO, PAPER_SOURCE)
TIDY = "p2w_lib.app.notebook_outputs"  # run_notebook.sh runs it on every executed notebook
_CMD = re.compile(r"run_notebook\.sh\s+(\S+)")


def notebook_imports(path: Path) -> set[str]:
    """The package modules a notebook's code cells import (its markdown cells are comments)."""
    return imported_names(ast.parse(path.read_text(encoding="utf-8")), "__main__", False)


def stage_code(notebook: str, root: Path = ROOT) -> list[str]:
    """The package files a stage running `notebook` executes, sorted."""
    return sorted(closure(notebook_imports(root / "notebooks" / f"{notebook}.py") | {TIDY}, root))


def rewrite(text: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """`text` (a dvc.yaml) with each notebook stage's package deps regenerated, and the stages that changed."""
    out, changed, stage, notebook, in_deps, written = [], [], None, None, False, False
    for line in text.splitlines(keepends=True):
        if re.match(r"^  [A-Za-z_][\w-]*:\s*$", line):
            stage, notebook, in_deps, written = line.strip()[:-1], None, False, False
        elif (m := _CMD.search(line)) and stage:
            notebook = m.group(1)
        elif re.match(r"^    deps:\s*$", line):
            in_deps = True
        elif in_deps and not re.match(r"^      - ", line):
            in_deps = False
        if in_deps and notebook and re.match(r"^      - p2w_lib", line):
            if not written:
                out += [f"      - {f}\n" for f in stage_code(notebook, root)]
                written = True
            continue
        out.append(line)
    new = "".join(out)
    for name in _stages_with_changed_deps(text, new):
        changed.append(name)
    return new, changed


def _stages_with_changed_deps(old: str, new: str) -> list[str]:
    import yaml  # dvc.yaml is YAML; the library proper needs no YAML reader

    before, after = yaml.safe_load(old)["stages"], yaml.safe_load(new)["stages"]
    return [s for s in after if before.get(s, {}).get("deps") != after[s].get("deps")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m p2w_lib.tools.dvc_deps", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a stage's code deps are out of date"
    )
    args = ap.parse_args(argv)
    stale = []
    for rel in PIPELINES:
        path = ROOT / rel
        new, changed = rewrite(path.read_text(encoding="utf-8"))
        stale += [f"{rel}:{s}" for s in changed]
        if changed and not args.check:
            path.write_text(new, encoding="utf-8")
    if stale:
        verb = "out of date" if args.check else "rewritten"
        print(f"code deps {verb}: {', '.join(stale)}" + ("; run `make dvc-deps`" if args.check else ""))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
