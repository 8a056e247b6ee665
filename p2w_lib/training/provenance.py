"""Which code produced a checkpoint: a hash of every package file its training entry point imports.

DVC re-runs a training stage when its code changes, but the model folders persist (so a killed run
can resume). A checkpoint therefore records the hash of the code that wrote it, and the pipeline
retrains instead of reusing or resuming a checkpoint written by other code. The files hashed are the
import closure of the entry point's module (core/import_graph.py), computed from the source, so a
module deep in the closure (the prefix cache, the batch plan) cannot be left out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from p2w_lib.core.import_graph import ROOT, closure, module_file


def code_fingerprint(entry_module: str, root: Path = ROOT) -> str:
    """sha256 over the path and bytes of every file in the import closure of `entry_module`, sorted
    (`root`: the folder holding the package, another copy of it in a test)."""
    if module_file(entry_module, root) is None:
        raise ModuleNotFoundError(f"{entry_module}: no source to fingerprint under {root}")
    h = hashlib.sha256()
    files = sorted(closure({entry_module}, root))
    for rel in files:
        path = root / rel
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
