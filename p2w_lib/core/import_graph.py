"""The package's module graph, read from the source with `ast` (nothing is imported or run).

Three things are derived from it rather than kept by hand: a checkpoint's code fingerprint (the
import closure of its training entry point, training/provenance.py), each DVC stage's code
dependencies (the closure of its notebook, tools/dvc_deps.py), and the layer and circle checks of
tests/test_layers.py. A hand-kept list of modules goes stale the day someone adds an import; the
closure cannot leave one out.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "p2w_lib"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../p2w_lib
ROOT = PACKAGE_DIR.parent
# Files a module reads at run time besides Python code (repository-relative).
DATA_DEPS = {"p2w_lib/clip/backbone.py": ("p2w_lib/clip/model_configs",)}


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of a dotted module name, or None when the name is not a module of the package."""
    base = root / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _target(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(tree: ast.AST, module: str, is_package: bool, top_level_only: bool = False) -> set[str]:
    """Dotted names of package modules `tree` imports (a `from m import x` adds m and m.x: x may be a module)."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            target = _target(node, module, is_package)
            if target.split(".")[0] == PACKAGE:
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


@cache
def _direct(module: str, root: Path, mtime_ns: int) -> frozenset[str]:
    path = module_file(module, root)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(imported_names(tree, module, path.name == "__init__.py"))


def direct_imports(module: str, root: Path = ROOT) -> set[str]:
    """The package modules `module` imports itself (with the parents Python runs first), every import counted."""
    path = module_file(module, root)
    if path is None:
        return set()
    found = {m for m in _direct(module, root, path.stat().st_mtime_ns) if module_file(m, root) is not None}
    return found | {p for m in found for p in _parents(m)}


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b first


def closure(modules: set[str] | list[str] | tuple[str, ...], root: Path = ROOT) -> set[str]:
    """Repository-relative paths of every package file reachable from `modules` (their own included),
    with packages' __init__ and the data files of DATA_DEPS."""
    seen, todo, files = set(), [*modules, *(p for m in modules for p in _parents(m))], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module, root)
        if path is None:
            continue  # a name imported from a module, not a module
        files.add(path.relative_to(root).as_posix())
        todo += sorted(direct_imports(module, root))
    for f in list(files):
        files |= set(DATA_DEPS.get(f, ()))
    return files


def all_modules(root: Path = ROOT) -> list[str]:
    """Every module of the package, dotted, sorted."""
    names = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: the package modules it imports}, for every module of the package."""
    return {m: direct_imports(m, root) - {m, *_parents(m)} for m in all_modules(root)}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted: import circles."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges.get(v, ()):
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)
