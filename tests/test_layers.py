"""The package's layers are its folders, and the module graph read from the source respects them.

Library, bottom up: core, data, clip, training, methods, retrieval, protocols. Application: demo
(the generated world), app (profile, stages, reports, figures), tools (bench, smoke, rehearsal,
ablations); above them all the entry points at the package's top (`cli`, `__main__`). A module may
import its own layer or a lower one; a library module never reaches the application at any depth;
there is no circle; no package import hides inside a function. A new folder must be placed here
before anything in it can pass, so the architecture cannot drift unnoticed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from p2w_lib.core.import_graph import all_modules, closure, cycles, graph, imported_names, module_file

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("core", "data", "clip", "training", "methods", "retrieval", "protocols")
APPLICATION = ("demo", "app", "tools")
ENTRY = "entry"  # p2w_lib/__init__.py, __main__.py, cli.py
LAYERS = (*LIBRARY, *APPLICATION, ENTRY)
# What the library must import without (the application's and the tests' dependency groups).
APP_ONLY = ("jupyterlab", "papermill", "dvc", "pytest", "nbformat", "ipywidgets", "pandas", "matplotlib", "yaml")


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and module_file(module, ROOT) and parts[1] not in LAYERS):
        return ENTRY
    return parts[1]


def upward_imports(root: Path) -> list[str]:
    """`a -> b` for each import of a module from a higher layer (or an undeclared folder)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for module, deps in graph(root).items():
        here = layer_of(module)
        for dep in sorted(deps):
            if dep == "p2w_lib":
                continue  # the package itself: its __init__ is the lazy face, importing nothing
            if here not in rank or layer_of(dep) not in rank or rank[layer_of(dep)] > rank[here]:
                bad.append(f"{module} ({here}) -> {dep} ({layer_of(dep)})")
    return bad


def test_every_module_lives_in_a_declared_layer():
    undeclared = sorted(m for m in all_modules(ROOT) if layer_of(m) not in LAYERS)
    assert not undeclared, f"place these folders in LAYERS: {undeclared}"
    assert {layer_of(m) for m in all_modules(ROOT)} == set(LAYERS)  # no declared layer is empty


def test_the_module_graph_has_no_circle():
    assert cycles(graph(ROOT)) == []


def test_no_module_imports_from_a_higher_layer():
    bad = upward_imports(ROOT)
    assert not bad, "upward imports:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", [m for m in all_modules(ROOT) if layer_of(m) in LIBRARY])
def test_a_library_module_never_reaches_the_application(module):
    reached = closure({module}, ROOT)
    leaks = sorted(f for f in reached if f.split("/")[1] in (*APPLICATION, "cli.py", "__main__.py"))
    assert not leaks, f"{module} reaches application code (at any depth): {leaks}"


def test_no_package_import_hides_inside_a_function():
    hidden = []
    for module in all_modules(ROOT):
        path = module_file(module, ROOT)
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        inner = imported_names(tree, module, is_package) - imported_names(tree, module, is_package, top_level_only=True)
        hidden += [f"{module}: {name}" for name in sorted(inner)]
    assert not hidden, "move these imports to the top of their module:\n" + "\n".join(hidden)


def _copy_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "p2w_lib", tmp_path / "p2w_lib", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_checks_see_an_upward_import_a_circle_and_a_deep_leak(tmp_path):
    root = _copy_package(tmp_path)
    assert upward_imports(root) == [] and cycles(graph(root)) == []
    topk = root / "p2w_lib" / "retrieval" / "topk.py"
    topk.write_text(topk.read_text() + "\nfrom p2w_lib.app import report  # noqa\n")
    assert any(b.startswith("p2w_lib.retrieval.topk (retrieval) -> p2w_lib.app.report") for b in upward_imports(root))
    assert "p2w_lib/app/report.py" in closure({"p2w_lib.protocols.cirr"}, root)  # reached through topk
    files = root / "p2w_lib" / "core" / "files.py"
    files.write_text(files.read_text() + "\nfrom p2w_lib.clip import backbone  # noqa\n")
    assert any("p2w_lib.core.files" in group for group in cycles(graph(root)))


def test_the_library_imports_without_the_application_dependencies():
    """Every library module imports with jupyterlab, papermill, dvc, pytest, pandas, matplotlib and
    yaml made unimportable: they belong to the `app` and `dev` groups of pyproject.toml."""
    library = [m for m in all_modules(ROOT) if layer_of(m) in LIBRARY]
    code = (
        "import importlib, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {APP_ONLY!r}:\n"
        "            raise ImportError(f'{name} is an application dependency')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {library!r}:\n"
        "    importlib.import_module(m)\n"
        "import p2w_lib; p2w_lib.compose_queries; p2w_lib.train_mapper\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_import_p2w_lib_loads_no_torch():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, p2w_lib; assert 'torch' not in sys.modules, 'torch loaded'"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
