"""Fashion-IQ annotation files: `captions/cap.{category}.{split}.json` (list of
{candidate, target, captions: [c1, c2]}) and `image_splits/split.{category}.{split}.json` (image ids)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2w_lib.data.errors import DataFormatError
from p2w_lib.data.json_files import load_json

CATEGORIES = ("dress", "shirt", "toptee")
HINT = "Fashion-IQ's annotations come from github.com/XiaoxiaoGuo/fashion-iq (captions/ and image_splits/)."


@dataclass(frozen=True)
class Triplet:
    candidate: str
    target: str
    captions: tuple[str, str]


def _load_json(path: Path, what: str):
    return load_json(path, what, HINT, expect=list)


def read_triplets(root: str | Path, category: str, split: str = "val") -> list[Triplet]:
    path = Path(root) / "captions" / f"cap.{category}.{split}.json"
    data = _load_json(path, "Fashion-IQ caption file")
    triplets = []
    for i, item in enumerate(data):
        try:
            c1, c2 = item["captions"]
            triplets.append(Triplet(str(item["candidate"]), str(item["target"]), (c1, c2)))
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(
                f"{path}: entry {i} is not {{candidate, target, captions: [c1, c2]}}: {item!r}"
            ) from err
    return triplets


def read_split(root: str | Path, category: str, split: str = "val") -> list[str]:
    path = Path(root) / "image_splits" / f"split.{category}.{split}.json"
    ids = _load_json(path, "Fashion-IQ image split")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataFormatError(f"{path}: expected a JSON list of image ids")
    return ids


def image_index(image_dir: str | Path) -> dict[str, str]:
    """Image id -> file path for every image in `image_dir` (any extension)."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: Fashion-IQ image folder not found; expected <root>/images/<id>.<ext>")
    return {p.stem: str(p) for p in image_dir.iterdir() if p.is_file()}
