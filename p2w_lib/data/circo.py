"""CIRCO: `annotations/{val,test}.json` queries over the COCO 2017 unlabeled images.

A val query is {id, reference_img_id, relative_caption, shared_concept, target_img_id,
gt_img_ids, semantic_aspects}; test queries have no targets. The gallery is every image of
`COCO2017_unlabeled/annotations/image_info_unlabeled2017.json`, stored as
`COCO2017_unlabeled/unlabeled2017/<file_name>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2w_lib.data.errors import DataFormatError
from p2w_lib.data.json_files import load_json

HINT = (
    "CIRCO's annotations come from github.com/miccunifi/CIRCO; the gallery is COCO's unlabeled2017 images "
    "and annotations/image_info_unlabeled2017.json from cocodataset.org."
)
GALLERY_INFO = "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json"
GALLERY_IMAGES = "COCO2017_unlabeled/unlabeled2017"


@dataclass(frozen=True)
class CircoQuery:
    id: int
    reference: int
    caption: str
    ground_truth: tuple[int, ...]  # empty in the test split; kept as annotated (the official |GT| counts repeats)
    target: int | None = None  # the image the caption was written for (val only)
    semantic_aspects: tuple[str, ...] = ()


def read_queries(root: str | Path, split: str = "val") -> list[CircoQuery]:
    path = Path(root) / "annotations" / f"{split}.json"
    data = load_json(path, "CIRCO annotation file", HINT, expect=list)
    queries = []
    for i, item in enumerate(data):
        try:
            gt = tuple(int(g) for g in item["gt_img_ids"]) if split != "test" else ()
            target = int(item["target_img_id"]) if split != "test" else None
            aspects = tuple(str(a) for a in item.get("semantic_aspects") or ())
            queries.append(
                CircoQuery(
                    int(item["id"]), int(item["reference_img_id"]), str(item["relative_caption"]), gt, target, aspects
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(
                f"{path}: entry {i} lacks id/reference_img_id/relative_caption"
                f"{'' if split == 'test' else '/gt_img_ids/target_img_id'}: {item!r}"
            ) from err
    return queries


def read_gallery(root: str | Path) -> dict[int, Path]:
    """COCO unlabeled2017 image id -> image file."""
    root = Path(root)
    path = root / GALLERY_INFO
    info = load_json(path, "COCO unlabeled2017 image list", HINT, expect=dict)
    try:
        return {int(im["id"]): root / GALLERY_IMAGES / im["file_name"] for im in info["images"]}
    except (KeyError, TypeError, ValueError) as err:
        raise DataFormatError(f"{path}: expected {{'images': [{{'id', 'file_name'}}, ...]}} ({err!r})") from err
