"""Pic2Word's ImageNet-R domain-conversion lists: `path label` per line, paths relative to the
data root, label = 1000 x domain index + class index (queries carry the class index only)."""

from __future__ import annotations

from pathlib import Path

from p2w_lib.core.files import atomic_write_text
from p2w_lib.data.errors import DataFormatError, require_file

PAPER_DOMAINS = ("cartoon", "origami", "toy", "sculpture")  # domain index = position; real images are 6
QUERY_LIST = "imgnet/imgnet_real_query.txt"
TARGET_LIST = "imgnet/imgnet_targets.txt"


def read_label_list(path: str | Path) -> list[tuple[str, int]]:
    path = Path(path)
    require_file(path, "image list", "Expected Pic2Word's 'path label' list (see the README's data layout).")
    items = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataFormatError(f"{path}:{line_no}: expected 'relative/path label', got {line!r}")
        items.append((parts[0], int(parts[1])))
    if not items:
        raise DataFormatError(f"{path}: the list is empty")
    return items


def write_label_list(path: str | Path, items: list[tuple[str, int]]) -> None:
    atomic_write_text(path, "".join(f"{p} {label} \n" for p, label in items))  # trailing space as in the originals
