"""Executed notebooks as a reader sees them: progress bars reduced to their final state, no paths
of this machine, no widget state, cell ids that do not change between runs, and the figures they
embed.

A widget's saved state renders only with a widget manager fetched from a CDN, so the tidied copy
keeps each widget output's plain-text form instead (which says what the live widget shows), and its
HTML export opens offline. Sources converted from text notebooks get random cell ids; numbering the
cells keeps the committed executed notebooks' diffs to what changed.

papermill stores every progress-bar refresh of a cell as stream text joined by carriage returns
(thousands of fragments for a training loop); a terminal shows only what follows the last `\\r` of
each line, and so does the tidied notebook.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import nbformat

from p2w_lib.core.files import atomic_path


def collapse_carriage_returns(text: str) -> str:
    """Each line as a terminal leaves it: the text after its last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _merged_streams(outputs: list) -> list:
    """Consecutive stream outputs of the same name (stdout/stderr) joined into one."""
    merged = []
    for out in outputs:
        if (
            out.output_type == "stream"
            and merged
            and merged[-1].output_type == "stream"
            and merged[-1].name == out.name
        ):
            merged[-1].text += out.text
        else:
            merged.append(out)
    return merged


def _machine_paths(repo_root: Path) -> list[tuple[str, str]]:
    """(absolute path, what to show instead), longest first: the virtualenv, the repository, the home."""
    pairs = [(sys.prefix, "<venv>"), (str(repo_root.resolve()), "."), (os.path.expanduser("~"), "~")]
    return sorted(((a, b) for a, b in pairs if a and a not in ("/", ".")), key=lambda p: -len(p[0]))


def scrub(text: str, repo_root: Path) -> str:
    for absolute, shown in _machine_paths(repo_root):
        text = text.replace(absolute + "/", shown + "/").replace(absolute, shown)
    return text


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def tidy_notebook(path: str | Path, repo_root: str | Path = ".") -> dict[str, int]:
    """Rewrite an executed notebook in place: streams merged and collapsed, machine paths scrubbed,
    widget views and state dropped, cells numbered. Returns how many stream characters were dropped
    and outputs kept, for the log."""
    path, repo_root = Path(path), Path(repo_root)
    book = nbformat.read(path, as_version=4)
    book.metadata.pop("widgets", None)
    before = after = 0
    for i, cell in enumerate(book.cells):
        cell.id = f"cell-{i:02d}"
        if cell.cell_type != "code":
            continue
        cell.outputs = _merged_streams(cell.outputs)
        for out in cell.outputs:
            if out.output_type == "stream":
                before += len(out.text)
                out.text = scrub(collapse_carriage_returns(out.text), repo_root)
                after += len(out.text)
            elif out.output_type in ("execute_result", "display_data", "error"):
                _scrub_output(out, repo_root)
    with atomic_path(path) as tmp:
        nbformat.write(book, tmp)
    return {"stream_chars_dropped": before - after, "cells": len(book.cells)}


def _scrub_output(out, repo_root: Path) -> None:
    if out.output_type == "error":
        out.traceback = [scrub(line, repo_root) for line in out.traceback]
        out.evalue = scrub(out.evalue, repo_root)
        return
    out.get("data", {}).pop(WIDGET_VIEW, None)
    for mime in ("text/plain", "text/html", "text/markdown"):
        if mime in out.get("data", {}):
            out.data[mime] = scrub(out.data[mime], repo_root)


def embedded_images(path: str | Path) -> list[bytes]:
    """The PNG images a notebook's outputs embed, in cell order."""
    book = nbformat.read(Path(path), as_version=4)
    return [
        base64.b64decode(out.data["image/png"])
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]


if __name__ == "__main__":  # run_notebook.sh: `python -m p2w_lib.app.notebook_outputs executed.ipynb ...`
    import sys as _sys

    for _path in _sys.argv[1:]:
        tidy_notebook(_path)
