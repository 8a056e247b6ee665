"""Preparing and checking the paper profile's data (notebook 01 and `python -m p2w_lib prepare`).

The datasets stay where the user put them, under data/<profile>/ (symlinks are fine); this step
fetches what may be fetched (Pic2Word's ImageNet-R lists, sha256-checked), links the two folders
the user names in params.yaml, builds the seeded COCO object queries, writes the CC3M training
list, and reports per benchmark how many listed files exist, naming the first missing ones.
Everything it writes goes to data/<profile>/prepared/. Missing annotation files of a benchmark
that is switched on stop the run with one message listing every problem; missing images are
reported here and counted again by each evaluation.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from p2w_lib.app.benchmarks import BENCHMARK_NAMES
from p2w_lib.app.downloads import (
    FASHION_IQ_TRAIN_FILES,
    FASHION_IQ_VAL_FILES,
    fetch_missing,
    fetch_pic2word_lists,
    fetch_verified,
)
from p2w_lib.core.files import atomic_write_json
from p2w_lib.data.cc3m import read_training_pairs, write_image_caption_list
from p2w_lib.data.circo import read_gallery
from p2w_lib.data.circo import read_queries as read_circo_queries
from p2w_lib.data.cirr import read_image_split
from p2w_lib.data.cirr import read_queries as read_cirr_queries
from p2w_lib.data.coco import build_object_queries
from p2w_lib.data.errors import DataFormatError
from p2w_lib.data.fashion_iq import CATEGORIES, image_index, read_split, read_triplets
from p2w_lib.data.imagenet_r import QUERY_LIST, TARGET_LIST, read_label_list
from p2w_lib.data.webdataset import is_member_ref


@dataclass(frozen=True)
class PaperDataConfig:
    """Where the paper profile's inputs come from. Datasets live under data/<profile>/ (symlinks are
    fine); the two paths below are linked into place by the data preparation.

    imagenet_val: folder of ImageNet validation images sorted by synset (`n01440764/ILSVRC2012_val_*.JPEG`);
        linked as `imgnet/real`. ImageNet may not be redistributed: point this at your copy.
    imagenet_r: ImageNet-R's public `imagenet-r.tar` (a path or its URL), or the folder it extracts
        to; linked (or downloaded and extracted) as `imgnet/imagenet-r`.
    imagenet_lists: base URL, or a local folder, holding Pic2Word's two list files (sha256-checked).
    fashion_iq_annotations: base URL, or a local folder, of Fashion-IQ's `captions/` and
        `image_splits/`; the validation files missing under data/<profile>/fashion-iq are fetched
        from it (sha256-checked). None = the public repository.
    """

    benchmarks: tuple[str, ...] = BENCHMARK_NAMES  # every registered one (benchmarks.py)
    imagenet_val: str | None = None
    imagenet_r: str | None = None
    imagenet_lists: str = "https://raw.githubusercontent.com/google-research/composed_image_retrieval/main/data/imgnet"
    fashion_iq_annotations: str | None = None
    coco_seed: int = 0
    coco_query_rule: str = "official"  # the original's box rule; "relative": 5-50% of the image, no crowd (extra)
    n_examples: int = 5  # missing files named in the report, per dataset


log = logging.getLogger(__name__)

CC3M_LIST = "cc3m_train.tsv"
REPORT = "report.json"


def _present(path: str | Path) -> bool:
    return is_member_ref(path) or os.path.isfile(path)  # shard members come from the shard's own index


def missing_files(paths: Sequence[str | Path], n_examples: int, desc: str) -> dict:
    """{listed, missing, first_missing} for a list of files."""
    missing = [str(p) for p in tqdm(paths, desc=desc, unit="file", leave=False, mininterval=1.0) if not _present(p)]
    return {"listed": len(paths), "missing": len(missing), "first_missing": missing[:n_examples]}


def _where(path: Path) -> str:
    """The report's description of a folder: where it is and, if linked, what it points to. It
    describes the state, not the action, so an unchanged dataset gives an unchanged report."""
    if path.is_symlink():
        return f"{path} -> {path.resolve()}"
    return str(path) if path.exists() else f"{path}: missing"


def link_folder(link: Path, source: str | None, what: str) -> str:
    """Make `link` point at the user's folder `source`; leave an existing real folder alone."""
    if source is not None:
        src = Path(source).expanduser().resolve()
        if not src.exists():
            raise FileNotFoundError(f"{what}: {src} does not exist; fix the path in params.yaml (paper_data)")
        if link.is_symlink():
            link.unlink()
        if link.exists():
            log.warning("%s: %s is a real folder; kept instead of linking %s", what, link, src)
        else:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src, target_is_directory=True)
    return _where(link)


def place_imagenet_r(imgnet: Path, source: str | None) -> str:
    """ImageNet-R as `imgnet/imagenet-r/`: extract the public tar (it holds `imagenet-r/...`) or link a folder."""
    target = imgnet / "imagenet-r"
    if source is None or not str(source).endswith(".tar"):
        return link_folder(target, source, "paper_data.imagenet_r")
    if target.exists():
        return _where(target)
    if "://" in str(source):  # the public tar's URL: download it once next to where it is extracted
        tar_path = fetch_verified(str(source), imgnet / "imagenet-r.tar", None)
    else:
        tar_path = Path(source).expanduser()
    if not tar_path.is_file():
        raise FileNotFoundError(
            f"paper_data.imagenet_r: {tar_path} not found; download imagenet-r.tar from "
            "people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar or point at the extracted folder"
        )
    extract_tar_folder(tar_path, "imagenet-r", target)
    log.info("extracted %s to %s", tar_path, target)
    return _where(target)


def unsafe_members(tar: tarfile.TarFile, top: str) -> list[str]:
    """Members that must not be extracted: outside `top/`, absolute, with '..', links, devices."""
    bad = []
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith(("/", "\\")) or ".." in parts or not parts or parts[0] != top:
            bad.append(f"{m.name} (outside {top}/)")
        elif not (m.isfile() or m.isdir()):
            bad.append(f"{m.name} (a link or special file)")
    return bad


def extract_tar_folder(tar_path: Path, top: str, target: Path) -> None:
    """Extract `top/` of a tar to `target`, all or nothing.

    Every member is checked first (this does not rely on tarfile's extraction filters, which
    Python 3.11 gained only in 3.11.4); the files go to a staging folder that is renamed into
    place when complete and removed on any failure, so a failed or killed run leaves nothing half
    extracted behind.
    """
    staging = target.parent / f".{target.name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)  # left by a run that was killed mid-extraction
    try:
        with tarfile.open(tar_path) as tar:
            bad = unsafe_members(tar, top)
            if bad:
                raise DataFormatError(
                    f"{tar_path}: refusing to extract, {len(bad)} member(s) are not plain files under "
                    f"{top}/: {bad[:3]}. Use the published archive, or extract it yourself and point "
                    "the setting at the folder."
                )
            tar.extractall(staging, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        os.replace(staging / top, target)  # appears only when complete
    except tarfile.TarError as err:
        raise DataFormatError(f"{tar_path}: not a readable tar archive ({err}); download it again") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare_imagenet_r(root: Path, cfg: PaperDataConfig) -> dict:
    base = cfg.imagenet_lists.rstrip("/")
    fetch_pic2word_lists(root, {name: f"{base}/{name}" for name in ("imgnet_real_query.txt", "imgnet_targets.txt")})
    report = {
        "real": link_folder(root / "imgnet" / "real", cfg.imagenet_val, "paper_data.imagenet_val"),
        "imagenet-r": place_imagenet_r(root / "imgnet", cfg.imagenet_r),
    }
    for name, rel in (("queries", QUERY_LIST), ("gallery", TARGET_LIST)):
        items = read_label_list(root / rel)
        report[name] = missing_files([root / p for p, _ in items], cfg.n_examples, f"checking ImageNet-R {name}")
    return report


def prepare_cc3m(root: Path, out_list: Path, n_examples: int) -> dict:
    """Write the training list (image, caption) of every CC3M image present; report the rest.

    Unreadable (corrupt) images are found later, when training reads them: they are skipped,
    counted and named in the training log (see train.py), never a crash.
    """

    pairs, source, skipped = read_training_pairs(root / "cc3m")
    present, missing = [], []
    for path, caption in tqdm(pairs, desc="checking CC3M images", unit="file", leave=False, mininterval=1.0):
        if _present(path):
            present.append((path, " ".join(caption.split())))  # tabs/newlines would break the list format
        else:
            missing.append(path)
    if not present:
        raise FileNotFoundError(f"{root / 'cc3m'}: none of the {len(pairs)} listed training images exists")
    write_image_caption_list(out_list, present)
    return {
        "source": source,
        "listed": len(pairs),
        "missing": len(missing),
        "first_missing": missing[:n_examples],
        **skipped,
        "training_images": len(present),
    }


def check_fashion_iq(root: Path, n_examples: int, annotations: str | None = None, train: bool = True) -> dict:
    """Fetch the validation captions/splits that are missing (and the training ones, Combiner's
    triplets, when `train`); count evaluable triplets per category."""

    needed = FASHION_IQ_VAL_FILES + (FASHION_IQ_TRAIN_FILES if train else ())
    for name in fetch_missing(root.parent, needed, annotations):
        log.info("fetched %s", name)
    files = image_index(root / "images")
    report = {}
    for category in CATEGORIES:
        if train:
            pairs = read_triplets(root, category, "train")
            usable = sum(t.candidate in files and t.target in files for t in pairs)
            report[f"{category}_train"] = {"triplets": len(pairs), "with_both_images": usable}
        triplets, ids = read_triplets(root, category, "val"), read_split(root, category, "val")
        absent = [i for i in ids if i not in files]
        gallery = set(ids)
        evaluable = sum(t.candidate in files and t.target in files and t.target in gallery for t in triplets)
        report[category] = {
            "triplets": len(triplets),
            "evaluable": evaluable,
            "gallery": len(ids),
            "gallery_missing": len(absent),
            "first_missing": absent[:n_examples],
        }
    return report


def check_cirr(root: Path, n_examples: int, train: bool = True) -> dict:
    """Count CIRR's queries and missing images per split; train: also the training split (Combiner's)."""
    report = {}
    for split in ("val", "test1") + (("train",) if train else ()):
        files = read_image_split(root, split)
        report[split] = {
            "queries": len(read_cirr_queries(root, split)),
            **missing_files(list(files.values()), n_examples, f"checking CIRR {split} images"),
        }
    return report


def check_circo(root: Path, n_examples: int) -> dict:
    files = read_gallery(root)
    report = {"val": {"queries": len(read_circo_queries(root, "val"))}}
    if (root / "annotations" / "test.json").is_file():  # optional: only for the test-server file
        report["test"] = {"queries": len(read_circo_queries(root, "test"))}
    report["gallery"] = missing_files(list(files.values()), n_examples, "checking CIRCO gallery images")
    return report


def prepare_coco(root: Path, out_dir: Path, seed: int, rule: str = "official") -> dict:
    return build_object_queries(root, out_dir, seed=seed, rule=rule)


def prepare_paper_data(
    root: str | Path, cfg: PaperDataConfig, fashion_iq_train: bool = True, cirr_train: bool = True
) -> dict:
    """Run every step for the switched-on benchmarks; write and return the report. fashion_iq_train,
    cirr_train: also fetch or check, and count, that benchmark's training triplets (a supervised
    Combiner's).

    Raises FileNotFoundError listing every benchmark whose annotation files are missing or malformed.
    """
    root = Path(root)
    prepared = root / "prepared"
    unknown = set(cfg.benchmarks) - set(BENCHMARK_NAMES)
    if unknown:
        raise ValueError(f"paper_data.benchmarks: unknown {sorted(unknown)}; choose from {BENCHMARK_NAMES}")
    steps: dict[str, Callable[[], dict]] = {
        "cc3m": lambda: prepare_cc3m(root, prepared / CC3M_LIST, cfg.n_examples),
        "domain_conversion": lambda: prepare_imagenet_r(root, cfg),
        "fashion_iq": lambda: check_fashion_iq(
            root / "fashion-iq", cfg.n_examples, cfg.fashion_iq_annotations, fashion_iq_train
        ),
        "cirr": lambda: check_cirr(root / "cirr", cfg.n_examples, cirr_train),
        "circo": lambda: check_circo(root / "circo", cfg.n_examples),
        "coco_objects": lambda: prepare_coco(root / "coco", prepared / "coco", cfg.coco_seed, cfg.coco_query_rule),
    }
    (prepared / "coco").mkdir(parents=True, exist_ok=True)  # a DVC output even when COCO is switched off
    report, problems = {"root": str(root), "benchmarks": list(cfg.benchmarks)}, []
    for name, step in steps.items():
        if name != "cc3m" and name not in cfg.benchmarks:
            continue
        try:
            report[name] = step()
        except (FileNotFoundError, DataFormatError) as err:
            problems.append(f"{name}: {err}")
            report[name] = {"error": str(err)}
    atomic_write_json(prepared / REPORT, report)
    if problems:
        raise FileNotFoundError(
            f"paper data under {root} is not ready ({len(problems)} problem(s); full report in {prepared / REPORT}):\n  "
            + "\n  ".join(problems)
            + "\nProvide the files (see README, 'Reproducing the paper'), or drop the benchmark from "
            "paper_data.benchmarks in params.yaml."
        )
    return report
