"""Which project files a notebook runs: the p2w_lib modules its cells import, and everything they
import in turn, at any depth and inside functions too (the library imports lazily). dvc.yaml must
list each of them as a dependency of the notebook's stage, or a changed line leaves results stale."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext

PACKAGE = "p2w_lib"
# Files a module reads at run time besides Python code.
DATA_DEPS = {"p2w_lib/clip/backbone.py": ("p2w_lib/clip/model_configs",)}


def module_file(root: Path, module: str) -> Path | None:
    base = root / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from . import x` may name a submodule
    return found


def closure(root: Path, modules: set[str]) -> set[str]:
    """Repository-relative paths of every project module reachable from `modules` (with packages' __init__)."""
    seen, todo, files = set(), list(modules), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(root, module)
        if path is None:
            continue  # a name imported from a module, not a module
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b first
        files.add(path.relative_to(root).as_posix())
        todo += sorted(_imported(ast.parse(path.read_text()), module, path.name == "__init__.py"))
    for f in list(files):
        files |= set(DATA_DEPS.get(f, ()))
    return files


def notebook_imports(path: Path) -> set[str]:
    book = jupytext.read(path)  # cell by cell, as a kernel runs them
    found = set()
    for cell in book.cells:
        if cell.cell_type == "code":
            found |= _imported(ast.parse(cell.source), "__main__", False)
    return found


def notebook_closure(root: Path, notebook: Path) -> set[str]:
    """Files the notebook's cells run, and the tidying that run_notebook.sh runs after them."""
    return closure(root, notebook_imports(notebook) | {"p2w_lib.app.notebook_outputs"})
