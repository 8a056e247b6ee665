"""Pic2Word's CC3M list: a tab-separated file with a `filepath<TAB>title` header, one image per line."""

from __future__ import annotations

import csv
from pathlib import Path

from p2w_lib.core.files import atomic_write_text
from p2w_lib.data.errors import DataFormatError, require_file
from p2w_lib.data.webdataset import read_shards

COLUMNS = ("filepath", "title")


def read_image_caption_list(path: str | Path, root: str | Path | None = None) -> list[tuple[str, str]]:
    """(image path, caption) pairs; relative image paths resolve against `root` (default: the list's folder)."""
    path = Path(path)
    require_file(path, "image-caption list", "Expected a tab-separated file with a 'filepath<TAB>title' header.")
    root = Path(root) if root is not None else path.parent
    try:
        return _read_pairs(path, root)
    except UnicodeDecodeError as err:
        raw = path.read_bytes()
        try:  # the reader decodes in chunks: find the offset in the whole file
            raw.decode("utf-8")
            at = err.start
        except UnicodeDecodeError as whole:
            at = whole.start
        line = raw[:at].count(b"\n") + 1
        raise DataFormatError(
            f"{path}:{line}: not UTF-8 text (byte {at}: {err.reason}); convert the list to UTF-8, "
            "e.g. `iconv -f latin1 -t utf-8`"
        ) from err


def _read_pairs(path: Path, root: Path) -> list[tuple[str, str]]:
    # utf-8-sig: a byte-order mark written by a spreadsheet is not part of the header
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != list(COLUMNS):
            raise DataFormatError(
                f"{path}: first line must be the header 'filepath<TAB>title' (Pic2Word's CC3M format), got {header!r}"
            )
        pairs = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2 or not row[0]:
                raise DataFormatError(f"{path}:{line_no}: expected 'filepath<TAB>title', got {row!r}")
            image = Path(row[0])
            pairs.append((str(image if image.is_absolute() else root / image), row[1]))
    return pairs


def write_image_caption_list(path: str | Path, pairs: list[tuple[str, str]]) -> None:
    for image, title in pairs:
        if "\t" in title or "\n" in title:
            raise ValueError(f"caption of {image} contains a tab or newline: {title!r}")
    lines = ["\t".join(COLUMNS)] + [f"{image}\t{title}" for image, title in pairs]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_training_pairs(folder: str | Path) -> tuple[list[tuple[str, str]], str, dict[str, int]]:
    """CC3M's (image, caption) pairs from `folder/train.tsv` (Pic2Word's list) or `folder/shards/*.tar`
    (WebDataset); returns the pairs, which source was used, and counts of samples left out."""

    folder = Path(folder)
    if (folder / "train.tsv").is_file():
        return read_image_caption_list(folder / "train.tsv"), "train.tsv", {}
    if (folder / "shards").is_dir():
        pairs, skipped = read_shards(folder / "shards")
        return pairs, "shards", skipped
    raise FileNotFoundError(
        f"{folder}: no CC3M training data. Put either Pic2Word's list `train.tsv` ('filepath<TAB>title' header, "
        "paths relative to that folder) with its images, or WebDataset shards in `shards/*.tar`."
    )
