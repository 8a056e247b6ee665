"""CIRR annotation files (rc2): `captions/cap.rc2.{split}.json` and `image_splits/split.rc2.{split}.json`.

A caption entry is {pairid, reference, caption, img_set: {id, members}, target_hard, target_soft}
(test1 has no targets); a split file maps image name -> path relative to the CIRR root
(`./dev/dev-0-0-img0.png`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2w_lib.data.errors import DataFormatError
from p2w_lib.data.json_files import load_json

HINT = "CIRR's annotations come from github.com/Cuberick-Orion/CIRR (cirr/captions, cirr/image_splits)."


@dataclass(frozen=True)
class CirrQuery:
    pairid: int
    reference: str
    caption: str
    members: tuple[str, ...]  # the image set of the query (Recall_subset ranks only these)
    target: str | None  # None in test1


def read_queries(root: str | Path, split: str = "val") -> list[CirrQuery]:
    path = Path(root) / "captions" / f"cap.rc2.{split}.json"
    data = load_json(path, "CIRR caption file", HINT, expect=list)
    queries = []
    for i, item in enumerate(data):
        try:
            queries.append(
                CirrQuery(
                    int(item["pairid"]),
                    str(item["reference"]),
                    str(item["caption"]),
                    tuple(str(m) for m in item["img_set"]["members"]),
                    str(item["target_hard"]) if split != "test1" else item.get("target_hard"),
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(
                f"{path}: entry {i} lacks pairid/reference/caption/img_set.members"
                f"{'' if split == 'test1' else '/target_hard'}: {item!r}"
            ) from err
    return queries


def read_image_split(root: str | Path, split: str = "val") -> dict[str, Path]:
    """Image name -> image file under the CIRR root."""
    root = Path(root)
    path = root / "image_splits" / f"split.rc2.{split}.json"
    data = load_json(path, "CIRR image split", HINT, expect=dict)
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object mapping image name -> relative path")
    return {str(name): root / rel for name, rel in data.items()}
