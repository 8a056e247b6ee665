"""A dress rehearsal of the paper run: the real annotation files, placeholder images, a tiny CLIP.

`build_rehearsal` makes a scratch git + DVC repository holding this project's pipeline, with
`data/paper/` filled from the real annotation files (Pic2Word's ImageNet-R lists, Fashion-IQ val,
CIRR val/test1, CIRCO val/test) and a small generated placeholder image at every path they name.
`run_rehearsal` then runs `dvc repro pipelines/paper/dvc.yaml` there with a tiny random CLIP and
checks what a real run must produce: every benchmark scored, every submission file within its
server's rules. Only the images and the model are stand-ins, so every quirk of the real files
(classes without renditions, repeated ids, odd punctuation in captions) goes through every
reader, protocol and writer, at the real annotation scale, in minutes on a CPU.

The placeholder scores mean nothing: the CLIP is random and the images are noise.
COCO's instance annotations are not among the reference files; a small synthetic
`instances_val2017.json` (polygons, a crowd RLE, a box under one pixel) stands in for them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from p2w_lib.app.benchmarks import BENCHMARKS
from p2w_lib.app.pipelines import PAPER, link_paper_pipeline
from p2w_lib.data.cc3m import write_image_caption_list
from p2w_lib.data.circo import GALLERY_IMAGES, GALLERY_INFO
from p2w_lib.data.circo import read_queries as circo_queries
from p2w_lib.data.cirr import read_image_split
from p2w_lib.data.cirr import read_queries as cirr_queries
from p2w_lib.data.fashion_iq import CATEGORIES, read_split, read_triplets
from p2w_lib.data.imagenet_r import read_label_list
from p2w_lib.protocols.submissions import check_circo_submission, check_cirr_submission

log = logging.getLogger(__name__)

PROJECT_FILES = ("params.yaml", "dvc.yaml", ".dvcignore", "notebooks", "pipelines", "p2w_lib")
N_VARIANTS = 97  # distinct placeholder images; a prime, so neighbouring paths differ
CC3M_IMAGES = 64
CIRCO_DISTRACTORS = 200


@dataclass(frozen=True)
class Rehearsal:
    repo: Path
    counts: dict  # placeholder images written per dataset


class _Placeholders:
    """Small encoded images, one of N_VARIANTS chosen by a stable hash of the file's path."""

    def __init__(self, size: int = 24):
        rng = np.random.default_rng(0)
        self.encoded: dict[str, list[bytes]] = {"PNG": [], "JPEG": []}
        for _ in range(N_VARIANTS):
            arr = np.empty((size, size, 3), dtype=np.uint8)
            arr[:] = rng.integers(0, 256, 3)
            x, y = rng.integers(0, size // 2, 2)
            arr[y : y + size // 2, x : x + size // 2] = rng.integers(0, 256, 3)
            for fmt in self.encoded:
                buf = io.BytesIO()
                Image.fromarray(arr).save(buf, format=fmt)
                self.encoded[fmt].append(buf.getvalue())

    def write(self, path: Path) -> None:
        fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.encoded[fmt][sum(path.name.encode()) % N_VARIANTS])

    def write_all(self, paths) -> int:
        n = 0
        for path in paths:
            self.write(Path(path))
            n += 1
        return n


def _copy_project(project: Path, repo: Path) -> None:
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = project / name
        if src.is_dir():
            # a session's .ipynb halves and an existing link or lock of the paper pipeline stay behind
            skip = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.ipynb", "dvc.yaml", "dvc.lock")
            shutil.copytree(src, repo / name, ignore=skip)
        elif src.is_file():
            shutil.copy(src, repo / name)
    link_paper_pipeline(repo)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _imagenet_r(reference: Path, sources: Path, images: _Placeholders) -> int:
    """Every path of both official lists: `imgnet/real/...` under the ImageNet-val source folder,
    `imgnet/imagenet-r/...` under the ImageNet-R source folder."""

    paths = set()
    for name in ("imgnet_real_query.txt", "imgnet_targets.txt"):
        paths |= {p for p, _ in read_label_list(reference / "pic2word-imagenet-r" / name)}
    mapping = {"imgnet/real/": sources / "imagenet_val", "imgnet/imagenet-r/": sources / "imagenet-r"}
    targets = []
    for rel in sorted(paths):
        prefix = next(p for p in mapping if rel.startswith(p))
        targets.append(mapping[prefix] / rel[len(prefix) :])
    return images.write_all(targets)


def _fashion_iq(reference: Path, root: Path, images: _Placeholders) -> int:
    ids = set()
    for category in CATEGORIES:
        for split in ("val", "train"):  # train: Combiner's labeled triplets
            ids |= set(read_split(reference / "fashion-iq", category, split))
            triplets = read_triplets(reference / "fashion-iq", category, split)
            ids |= {i for t in triplets for i in (t.candidate, t.target)}
    return images.write_all(root / "fashion-iq" / "images" / f"{i}.png" for i in sorted(ids))


def has_cirr_train(reference: Path) -> bool:
    """Whether the reference holds CIRR's training captions (cap.rc2.train.json): without them the
    CIRR-trained Combiner cannot be rehearsed and is switched off in the rehearsal's params."""
    return (reference / "cirr" / "captions" / "cap.rc2.train.json").is_file()


def _cirr(reference: Path, root: Path, images: _Placeholders) -> int:
    shutil.copytree(reference / "cirr", root / "cirr", ignore=shutil.ignore_patterns("LICENSE"))
    splits = ("val", "test1") + (("train",) if has_cirr_train(reference) else ())
    return sum(images.write_all(read_image_split(root / "cirr", split).values()) for split in splits)


def _circo(reference: Path, root: Path, images: _Placeholders) -> int:
    """The annotations as they are; a gallery of every image they name plus distractors."""

    shutil.copytree(reference / "circo" / "annotations", root / "circo" / "annotations")
    ids = set()
    for split in ("val", "test"):
        for q in json.loads((root / "circo" / "annotations" / f"{split}.json").read_text()):
            ids.add(q["reference_img_id"])
            ids |= set(q.get("gt_img_ids", ())) | ({q["target_img_id"]} if "target_img_id" in q else set())
    ids |= set(range(10**7, 10**7 + CIRCO_DISTRACTORS))  # ids no annotation uses
    infos = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 24, "height": 24} for i in sorted(ids)]
    _write_json(root / "circo" / GALLERY_INFO, {"images": infos})
    return images.write_all(root / "circo" / GALLERY_IMAGES / im["file_name"] for im in infos)


def _coco(root: Path, images: _Placeholders, n: int = 40) -> int:
    """A synthetic val2017: per image two polygon instances, on every fifth a crowd RLE, on every
    seventh only a sub-pixel box (a candidate under the official rule, whose bound is 0.05 px)."""
    base = root / "coco"
    names = ("person", "dog", "bicycle", "bench", "cup", "chair")
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    ims, anns = [], []
    for i in range(n):
        w = h = 24
        ims.append({"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": w, "height": h})
        boxes = [(2, 2, 10, 8, 1 + i % 6), (12, 10, 9, 11, 1 + (i + 2) % 6)] if i % 7 else [(3, 3, 0.2, 0.5, 1 + i % 6)]
        for j, (x, y, bw, bh, cat) in enumerate(boxes):
            poly = [x, y, x + bw, y, x + bw, y + bh, x, y + bh]
            anns.append(
                {
                    "id": 10 * i + j,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": [x, y, bw, bh],
                    "segmentation": [poly],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        if i % 5 == 0:
            mask = np.zeros((h, w), dtype=bool)
            mask[14:20, 2:9] = True
            flat = mask.T.reshape(-1)
            change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
            runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
            anns.append(
                {
                    "id": 10 * i + 9,
                    "image_id": i + 1,
                    "category_id": 6,
                    "bbox": [2, 14, 7, 6],
                    "area": 42,
                    "iscrowd": 1,
                    "segmentation": {"size": [h, w], "counts": runs},
                }
            )
    _write_json(
        base / "annotations" / "instances_val2017.json", {"images": ims, "annotations": anns, "categories": cats}
    )
    return images.write_all(base / "val2017" / im["file_name"] for im in ims)


def _cc3m(root: Path, images: _Placeholders) -> int:
    paths = [root / "cc3m" / "images" / f"{i:07d}.jpg" for i in range(CC3M_IMAGES)]
    write_image_caption_list(
        root / "cc3m" / "train.tsv", [(f"images/{p.name}", f"a photo number {i}") for i, p in enumerate(paths)]
    )
    return images.write_all(paths)


def _params(repo: Path, reference: Path, sources: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["profile"] = "paper"
    paper = params["profiles"]["paper"]
    paper["clip"] = {"model": "p2w-tiny", "pretrained": None, "device": "cpu"}
    paper["mapper"]["hidden_dim"] = 32
    paper["train"].update(
        batch_size=32, epochs=1, warmup_steps=1, num_workers=0, recompute_image_features=True, augment_views=1
    )
    paper["lincir"].update(batch_size=32, steps=2, hidden_mult=1)
    paper["searle"].update(oti_images=64, oti_steps=2, oti_batch_size=32, batch_size=32, steps=2, hidden_mult=1)
    paper["combiner"].update(batch_size=512, epochs=1, projection_mult=1, hidden_mult=2)
    if not has_cirr_train(reference):
        log.warning("%s has no cirr/captions/cap.rc2.train.json: the CIRR-trained Combiner is not rehearsed", reference)
        paper["combiner"]["cirr"] = False
    paper["paper_data"].update(
        imagenet_val=str(sources / "imagenet_val"),
        imagenet_r=str(sources / "imagenet-r"),
        imagenet_lists=str(reference / "pic2word-imagenet-r"),
        fashion_iq_annotations=str(reference / "fashion-iq"),
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def build_rehearsal(project: str | Path, reference: str | Path, out: str | Path) -> Rehearsal:
    """The scratch repository under `out` (which must not exist yet)."""
    project, reference, out = Path(project).resolve(), Path(reference).resolve(), Path(out).resolve()
    for needed in ("pic2word-imagenet-r", "fashion-iq", "cirr", "circo"):
        if not (reference / needed).is_dir():
            raise FileNotFoundError(
                f"{reference / needed}: missing; the rehearsal needs the real annotation files "
                "(pic2word-imagenet-r/, fashion-iq/, cirr/, circo/) under --reference"
            )
    if out.exists():
        raise FileExistsError(
            f"{out} exists; the rehearsal builds a fresh repository (pick another --out or delete it)"
        )
    repo, sources = out / "repo", out / "sources"
    _copy_project(project, repo)
    root = repo / "data" / "paper"
    images = _Placeholders()
    counts = {
        "imagenet_r": _imagenet_r(reference, sources, images),
        "fashion_iq": _fashion_iq(reference, root, images),
        "cirr": _cirr(reference, root, images),
        "circo": _circo(reference, root, images),
        "coco": _coco(root, images),
        "cc3m": _cc3m(root, images),
    }
    _params(repo, reference, sources)
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "rehearsal")
    subprocess.run([_bin("dvc"), "init", "-q"], cwd=repo, check=True, capture_output=True)
    return Rehearsal(repo=repo, counts=counts)


def _bin(name: str) -> str:
    """A console script of this interpreter's environment (the venv's dvc), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else name


def check_outputs(repo: Path, reference: Path) -> dict:
    """What a real run must leave behind: every benchmark scored, submissions within the rules."""

    results = repo / "results" / "paper"
    summary = {}
    for task in BENCHMARKS:
        doc = json.loads((results / "metrics" / f"{task}.json").read_text())
        if "methods" not in doc:
            raise AssertionError(f"{task}: no scores in the results file: {doc}")
        summary[task] = {k: v for k, v in doc.items() if k.startswith("n_") or k in ("counts", "queries", "prompt")}
    pairids = [q.pairid for q in cirr_queries(reference / "cirr", "test1")]
    subs = results / "submissions"
    sizes = {}
    for metric in ("recall", "recall_subset"):
        path = subs / f"cirr_test1_{metric}_pic2word.json"
        check_cirr_submission(json.loads(path.read_text()), pairids, metric)
        sizes[path.name] = path.stat().st_size
    path = subs / "circo_test_pic2word.json"
    check_circo_submission(json.loads(path.read_text()), [q.id for q in circo_queries(reference / "circo", "test")])
    sizes[path.name] = path.stat().st_size
    summary["submission_bytes"] = sizes
    return summary


# The stages that read annotation files: everything but the figures (the reduced rehearsal CI runs).
REDUCED_TARGETS = ("domain_conversion", "fashion_iq", "more_benchmarks")


def run_rehearsal(project: str | Path, reference: str | Path, out: str | Path, reduced: bool = False) -> dict:
    """Build the repository, run the paper pipeline through DVC, check the outputs; timings included.

    reduced: run only REDUCED_TARGETS (and what they depend on) instead of the whole pipeline."""
    start = time.perf_counter()
    rehearsal = build_rehearsal(project, reference, out)
    built = time.perf_counter()
    log.info("rehearsal repository %s: placeholder images %s", rehearsal.repo, rehearsal.counts)
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    pipeline = PAPER
    targets = [f"{pipeline}:{stage}" for stage in REDUCED_TARGETS] if reduced else [pipeline]
    proc = subprocess.run([_bin("dvc"), "repro", *targets], cwd=rehearsal.repo, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"dvc repro failed in {rehearsal.repo} (exit {proc.returncode}); the partial notebooks "
            "and the stage's output above say where"
        )
    ran = time.perf_counter()
    summary = check_outputs(rehearsal.repo, Path(reference).resolve())
    return {
        "repo": str(rehearsal.repo),
        "images": rehearsal.counts,
        "outputs": summary,
        "seconds": {"build": round(built - start, 1), "dvc_repro": round(ran - built, 1)},
    }
