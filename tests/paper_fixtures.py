"""A miniature of every paper-profile dataset, in the real file formats, with known defects
(a missing rendition, a missing Fashion-IQ image, a corrupt CC3M image) for the reports to find."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from p2w_lib.data.cc3m import write_image_caption_list
from p2w_lib.data.imagenet_r import PAPER_DOMAINS, write_label_list

WNIDS = ("n01440764", "n01443537", "n01484850")


def _image(seed: int, size: tuple[int, int] = (32, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.empty((h, w, 3), dtype=np.uint8)
    arr[:] = rng.integers(0, 256, 3)
    x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
    arr[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.integers(0, 256, 3)
    return Image.fromarray(arr)


def save(path: Path, seed: int, size=(32, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _image(seed, size).save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return path


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def cc3m(root: Path, n: int = 24) -> None:
    images = [save(root / "cc3m" / "images" / f"{i:05d}.jpg", 1000 + i) for i in range(n)]
    images[3].write_bytes(b"not a jpeg")  # a corrupt download: skipped and reported, never a crash
    write_image_caption_list(
        root / "cc3m" / "train.tsv", [(f"images/{p.name}", f"caption {i}") for i, p in enumerate(images)]
    )


def cc3m_shards(folder: Path, n_per_shard: int = 4, n_shards: int = 2) -> list[str]:
    """WebDataset shards: `<key>.jpg` + `<key>.txt`; one sample without an image."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for s in range(n_shards):
        with tarfile.open(folder / f"{s:05d}.tar", "w") as tar:
            for i in range(n_per_shard):
                key = f"{s:05d}{i:04d}"
                buf = io.BytesIO()
                _image(2000 + s * 100 + i).save(buf, format="JPEG")
                for name, data in ((f"{key}.jpg", buf.getvalue()), (f"{key}.txt", f"caption {key}".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                keys.append(key)
            info = tarfile.TarInfo(f"{s:05d}9999.txt")  # caption without image
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return keys


def imagenet(root: Path, sources: Path) -> dict:
    """ImageNet val (a user folder), imagenet-r.tar, and Pic2Word-format lists; returns the list files."""
    queries, targets = [], []
    for c, wnid in enumerate(WNIDS):
        for i in range(2):
            name = f"ILSVRC2012_val_{c * 10 + i:08d}.JPEG"
            save(sources / "imagenet_val" / wnid / name, 3000 + c * 10 + i)
            queries.append((f"imgnet/real/{wnid}/{name}", c))
            targets.append((f"imgnet/real/{wnid}/{name}", 6000 + c))
        for d, domain in enumerate(PAPER_DOMAINS):
            for i in range(2):
                rel = f"{wnid}/{domain}_{i}.jpg"
                if (c, d, i) != (2, 3, 1):  # listed but absent from the tar: reported as missing
                    save(sources / "imagenet-r-src" / "imagenet-r" / rel, 4000 + c * 100 + d * 10 + i)
                targets.append((f"imgnet/imagenet-r/{rel}", 1000 * d + c))
    with tarfile.open(sources / "imagenet-r.tar", "w") as tar:
        tar.add(sources / "imagenet-r-src" / "imagenet-r", arcname="imagenet-r")
    lists = sources / "lists"
    write_label_list(lists / "imgnet_real_query.txt", queries)
    write_label_list(lists / "imgnet_targets.txt", targets)
    return {"query": lists / "imgnet_real_query.txt", "targets": lists / "imgnet_targets.txt"}


def fashion_iq(root: Path) -> None:
    fiq = root / "fashion-iq"
    for k, category in enumerate(("dress", "shirt", "toptee")):
        ids = [f"{category[0]}{k}{i:03d}" for i in range(8)]
        for i, image_id in enumerate(ids):
            if (category, i) != ("shirt", 7):  # one missing image: its triplet is counted as not evaluable
                save(fiq / "images" / f"{image_id}.png", 5000 + k * 100 + i)
        triplets = [
            {"candidate": ids[i], "target": ids[(i + 3) % 8], "captions": [f"is darker {i}.", f"has a logo {i}"]}
            for i in range(5)
        ] + [{"candidate": ids[7], "target": ids[0], "captions": ["is red", "is long"]}]
        write_json(fiq / "captions" / f"cap.{category}.val.json", triplets)
        write_json(fiq / "image_splits" / f"split.{category}.val.json", ids)
        # the training split: images of its own (Combiner's labeled triplets)
        train_ids = [f"{category[0]}{k}t{i:03d}" for i in range(6)]
        for i, image_id in enumerate(train_ids):
            save(fiq / "images" / f"{image_id}.png", 6000 + k * 100 + i)
        train = [
            {"candidate": train_ids[i], "target": train_ids[(i + 1) % 6], "captions": [f"is lighter {i}", "is short"]}
            for i in range(6)
        ]
        write_json(fiq / "captions" / f"cap.{category}.train.json", train)
        write_json(fiq / "image_splits" / f"split.{category}.train.json", train_ids)


CIRR_TEST1_DISTRACTORS = 48  # the server takes top-50 lists: test1 needs over 50 images


def cirr(root: Path) -> None:
    base = root / "cirr"
    # train: Combiner's triplets, in CIRR's sub-folders of the train images
    for split, prefix, n_sets, seed in (
        ("val", "dev", 3, 6000),
        ("test1", "test1", 2, 6100),
        ("train", "train", 2, 6500),
    ):
        folder = "train/0" if split == "train" else prefix
        names = [f"{prefix}-{s}-{j}-img{j % 2}" for s in range(n_sets) for j in range(4)]
        extra = [f"{prefix}-9{i:02d}-0-img0" for i in range(CIRR_TEST1_DISTRACTORS)] if split == "test1" else []
        for i, name in enumerate(names + extra):
            save(base / folder / f"{name}.png", seed + i)
        write_json(base / "image_splits" / f"split.rc2.{split}.json", {n: f"./{folder}/{n}.png" for n in names + extra})
        queries = []
        for s in range(n_sets):
            members = names[s * 4 : (s + 1) * 4]
            for q in range(2):
                entry = {
                    "pairid": s * 10 + q,
                    "reference": members[q],
                    "caption": f"has {q + s} more dogs",
                    "img_set": {"id": s, "members": members, "reference_rank": q, "target_rank": 3},
                }
                if split != "test1":
                    entry.update(target_hard=members[3 - q], target_soft={members[3 - q]: 1.0})
                queries.append(entry)
        write_json(base / "captions" / f"cap.rc2.{split}.json", queries)


CIRCO_IDS = tuple(range(100, 116))  # references and ground truths
CIRCO_DISTRACTORS = tuple(range(200, 240))  # the server takes top-50 lists: the gallery needs 50 images


def circo(root: Path) -> None:
    base = root / "circo"
    ids = list(CIRCO_IDS)
    for i in ids + list(CIRCO_DISTRACTORS):
        save(base / "COCO2017_unlabeled" / "unlabeled2017" / f"{i:012d}.jpg", 7000 + i)
    write_json(
        base / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json",
        {
            "images": [
                {"id": i, "file_name": f"{i:012d}.jpg", "width": 32, "height": 32}
                for i in ids + list(CIRCO_DISTRACTORS)
            ]
        },
    )
    aspects = (["cardinality"], ["addition", "viewpoint"], ["cardinality", "negation"], [], ["viewpoint"])
    val = [
        {
            "id": q,
            "reference_img_id": ids[q],
            "target_img_id": ids[q + 5],
            "relative_caption": f"shows {q} cats",
            "shared_concept": "a cat",
            "gt_img_ids": ids[q + 5 : q + 5 + 1 + q % 3],
            "semantic_aspects": aspects[q],
        }
        for q in range(5)
    ]
    val[1]["gt_img_ids"] = val[1]["gt_img_ids"] + val[1]["gt_img_ids"][:1]  # a repeated id: the official |GT| counts it
    test = [
        {"id": q, "reference_img_id": ids[q + 8], "relative_caption": f"is at night {q}", "shared_concept": "a street"}
        for q in range(3)
    ]
    write_json(base / "annotations" / "val.json", val)
    write_json(base / "annotations" / "test.json", test)


def coco(root: Path) -> None:
    base = root / "coco"
    images, annotations = [], []
    categories = [{"id": 1, "name": "dog"}, {"id": 2, "name": "frisbee"}, {"id": 3, "name": "bench"}]
    for i in range(8):
        w, h = 48, 40
        images.append({"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": w, "height": h})
        save(base / "val2017" / f"{i + 1:012d}.jpg", 8000 + i, (w, h))
        boxes = [(4, 4, 20, 16, 1 + i % 3), (26, 10, 16, 20, 1 + (i + 1) % 3)]  # 17% and 17% of the image
        if i == 7:  # official rule: a query (area in pixels > 0.05); relative rule: too small, no candidate
            boxes = [(1, 1, 4, 4, 1)]
        for j, (x, y, bw, bh, cat) in enumerate(boxes):
            poly = [x, y, x + bw, y, x + bw, y + bh, x, y + bh]
            annotations.append(
                {
                    "id": i * 10 + j,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": [x, y, bw, bh],
                    "segmentation": [poly],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        if i == 6:  # a crowd instance (uncompressed RLE): a candidate under the official rule only
            annotations.append(
                {
                    "id": 99,
                    "image_id": i + 1,
                    "category_id": 3,
                    "bbox": [30, 2, 10, 8],
                    "area": 80,
                    "iscrowd": 1,
                    "segmentation": {"size": [h, w], "counts": box_rle(30, 2, 10, 8, w, h)},
                }
            )
    write_json(
        base / "annotations" / "instances_val2017.json",
        {"images": images, "annotations": annotations, "categories": categories},
    )


def box_rle(x: int, y: int, bw: int, bh: int, w: int, h: int) -> list[int]:
    """Uncompressed COCO RLE of a filled box."""
    mask = np.zeros((h, w), dtype=bool)
    mask[y : y + bh, x : x + bw] = True
    return mask_rle(mask)


def mask_rle(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE of a mask [H, W]: run lengths over the column-major pixels, background first."""
    flat = mask.T.reshape(-1)
    runs, current, count = [], False, 0
    for v in flat:
        if v != current:
            runs.append(count)
            current, count = v, 0
        count += 1
    return runs + [count]


def paper_world(root: Path, sources: Path) -> dict:
    """Every dataset under `root` (data/<profile>), user-provided sources under `sources`."""
    cc3m(root)
    lists = imagenet(root, sources)
    fashion_iq(root)
    cirr(root)
    circo(root)
    coco(root)
    return lists
