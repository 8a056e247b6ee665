"""COCO val2017 for Pic2Word's object-composition benchmark.

Input: `annotations/instances_val2017.json` and `val2017/<file_name>`. `build_object_queries`
picks one object instance per image, paints everything outside the instance's mask white, crops
the box and stretches it to a square (the original resizes the region to the model's square input
without a centre crop), writes it to `query_crops/<image stem>.png`, and lists the queries in
Pic2Word's `coco_eval.csv` format (`id,query_regions,query_class,classes`: file name, box
`x1;y1;x2;y2`, the object's class, the image's other classes joined by `;`).

Candidate rules (`rule=`):
- "official" (default): the original `prepare_data.py`: box area in pixels with
  0.05 < area < 0.5 x image area (in effect no lower bound), crowd (RLE) instances included. One
  guard: a box whose integer crop (the original truncates the corners to int) is empty is no
  candidate, since no query image can be cut from it (the original's crop would fail on it).
- "relative": this project's extra: the box covers 5% to 50% of the image, crowd instances excluded.
The pick among candidates is seeded here (the original's `random.sample` had no seed), so the
query set is repeatable; either way it is one uniform draw per image.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from p2w_lib.core.files import atomic_path
from p2w_lib.data.errors import DataFormatError, require_file
from p2w_lib.data.json_files import load_json

HINT = "COCO 2017 comes from cocodataset.org (val2017 images and annotations_trainval2017)."
QUERY_FILE = "coco_eval.csv"
COLUMNS = ("id", "query_regions", "query_class", "classes")


@dataclass(frozen=True)
class ObjectQuery:
    file_name: str  # the val2017 image: the query's target and a gallery item
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 of the query object
    query_class: str
    other_classes: tuple[str, ...]  # classes of the image's other objects: the query's text


QUERY_RULES = ("official", "relative")


def rle_counts(counts) -> list[int]:
    """Run lengths of a COCO RLE: a list already, or COCO's compressed string (6 bits a
    character, continuation bit 0x20, runs after the second stored as differences)."""
    if isinstance(counts, list):
        return [int(c) for c in counts]
    runs, i, data = [], 0, counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    while i < len(data):
        value, shift, more = 0, 0, True
        while more:
            c = data[i] - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            i += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rle_mask(rle: dict) -> np.ndarray:
    """Binary mask [H, W] of a COCO RLE ({"size": [h, w], "counts": ...}), runs in column-major
    order starting with background."""
    height, width = (int(v) for v in rle["size"])
    runs = rle_counts(rle["counts"])
    if sum(runs) != height * width:
        raise ValueError(f"RLE runs cover {sum(runs)} pixels, the mask has {height * width}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)  # [H * W] column-major
    return flat.reshape(width, height).T


def instance_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Binary mask [H, W] of an instance: polygons (COCO's list of flat x,y lists) or RLE (crowd)."""
    if isinstance(segmentation, dict):
        return rle_mask(segmentation)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in segmentation:
        if len(poly) >= 6:
            draw.polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly) - 1, 2)], fill=1)
    return np.asarray(canvas, dtype=bool)


def _candidates(data: dict) -> tuple[dict[int, dict], dict[int, list[dict]], dict[int, str]]:
    images = {im["id"]: im for im in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    per_image: dict[int, list[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        if ann["image_id"] not in images or ann["category_id"] not in names:
            raise DataFormatError(
                f"annotation {ann.get('id')!r} names image_id {ann['image_id']!r} / category_id "
                f"{ann['category_id']!r}, which the file's images/categories do not list"
            )
        per_image[ann["image_id"]].append(ann)
    return images, per_image, names


def is_candidate(ann: dict, image_area: float, rule: str = "official") -> bool:
    """May this instance be a query? `rule` as in the module docstring."""
    x, y, w, h = ann["bbox"]
    box_area = w * h
    if int(x + w) <= int(x) or int(y + h) <= int(y):  # nothing left to crop after truncation
        return False
    if rule == "official":
        return 0.05 < box_area < 0.5 * image_area
    if rule == "relative":
        return not ann.get("iscrowd") and 0.05 * image_area < box_area < 0.5 * image_area
    raise ValueError(f"COCO query rule {rule!r}; choose from {QUERY_RULES} ('official' is the paper's)")


def build_object_queries(root: str | Path, out_dir: str | Path, seed: int = 0, rule: str = "official") -> dict:
    """Write `query_crops/` and `coco_eval.csv` under `out_dir` from the COCO val2017 under `root`; returns counts."""
    if rule not in QUERY_RULES:
        raise ValueError(f"COCO query rule {rule!r}; choose from {QUERY_RULES} ('official' is the paper's)")
    root, out_dir = Path(root), Path(out_dir)
    ann_path = root / "annotations" / "instances_val2017.json"
    data = load_json(ann_path, "COCO instances file", HINT, expect=dict)
    try:
        images, per_image, names = _candidates(data)
    except DataFormatError as err:
        raise DataFormatError(f"{ann_path}: {err}. Use the unmodified instances_val2017.json.") from err
    except (KeyError, TypeError) as err:
        raise DataFormatError(
            f"{ann_path}: expected COCO instances JSON with images/annotations/categories ({err!r})"
        ) from err
    rng = random.Random(seed)
    rows, counts = [], {"images": len(images), "queries": 0, "no_candidate": 0, "missing_image": 0, "rule": rule}
    for image_id in tqdm(sorted(per_image), desc="COCO object queries", unit="image", leave=False):
        im, anns = images[image_id], per_image[image_id]
        area = im["width"] * im["height"]
        cands = [a for a in anns if is_candidate(a, area, rule)]
        if not cands:
            counts["no_candidate"] += 1
            continue
        src = root / "val2017" / im["file_name"]
        if not src.is_file():
            counts["missing_image"] += 1
            continue
        chosen = rng.choice(cands)
        x, y, w, h = chosen["bbox"]
        box = (x, y, x + w, y + h)
        _write_query_crop(src, query_crop_path(out_dir, im["file_name"]), chosen["segmentation"], box)
        query_class = names[chosen["category_id"]]
        others = tuple(dict.fromkeys(names[a["category_id"]] for a in anns if names[a["category_id"]] != query_class))
        rows.append(ObjectQuery(im["file_name"], box, query_class, others))
    write_queries(out_dir / QUERY_FILE, rows)
    counts["queries"] = len(rows)
    return counts


def query_crop_path(queries_dir: str | Path, file_name: str) -> Path:
    return Path(queries_dir) / "query_crops" / f"{Path(file_name).stem}.png"


def _write_query_crop(src: Path, dest: Path, segmentation, box) -> None:
    with Image.open(src) as img:
        rgb = np.asarray(img.convert("RGB"))  # [H, W, 3]
    mask = instance_mask(segmentation, rgb.shape[0], rgb.shape[1])[..., None]  # [H, W, 1]
    masked = Image.fromarray(np.where(mask, rgb, 255).astype(np.uint8))  # outside the object: white, as the original
    region = masked.crop(tuple(int(v) for v in box))
    side = max(region.size)
    with atomic_path(dest) as tmp:
        region.resize((side, side), Image.BICUBIC).save(tmp, format="PNG")


def write_queries(path: Path, rows: list[ObjectQuery]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for q in rows:
            writer.writerow([q.file_name, ";".join(f"{v:g}" for v in q.box), q.query_class, ";".join(q.other_classes)])


def read_queries(queries_dir: str | Path) -> list[ObjectQuery]:
    path = Path(queries_dir) / QUERY_FILE
    require_file(path, "COCO object-composition query list", "Build it with the paper data preparation (notebook 01).")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise DataFormatError(f"{path}: header must be {','.join(COLUMNS)}, got {reader.fieldnames}")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            try:
                box = tuple(float(v) for v in row["query_regions"].split(";"))
                if len(box) != 4:
                    raise ValueError("box needs 4 numbers")
            except ValueError as err:
                raise DataFormatError(
                    f"{path}:{line_no}: query_regions must be 'x1;y1;x2;y2', got {row['query_regions']!r}"
                ) from err
            others = tuple(c for c in (row["classes"] or "").split(";") if c)
            rows.append(ObjectQuery(row["id"], box, row["query_class"], others))
    return rows
