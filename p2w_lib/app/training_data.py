"""What each trained method learns from: the profile's CC3M(-like) image-caption list (the zero-shot
methods), or its labeled training triplets (the supervised Combiner)."""

from __future__ import annotations

import logging
from pathlib import Path

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.data.cirr import read_image_split
from p2w_lib.data.cirr import read_queries as read_cirr_queries
from p2w_lib.data.fashion_iq import CATEGORIES, image_index, read_split, read_triplets
from p2w_lib.data.images import BadImagesError
from p2w_lib.methods.combiner.triplets import LabeledTriplets
from p2w_lib.methods.searle import oti_subset, phrases_for
from p2w_lib.methods.searle.concepts import ConceptPhrases

log = logging.getLogger(__name__)


def training_list(p) -> list[tuple[str, str]]:
    """(image, caption) of the demo's CC3M-like list, or of the paper's present CC3M images (prepare_data)."""
    return p.source.training_list(p)


def training_images(p) -> list[str]:
    """Pic2Word's training set: the images of the CC3M(-like) list."""
    return [path for path, _ in training_list(p)]


def training_captions(p) -> list[str]:
    """LinCIR's training set: the captions of the same list, never its images. (LinCIR itself trains on
    CC3M's captions plus two prompt collections; the paper profile uses CC3M's alone, a deviation.)"""
    return [caption for _, caption in training_list(p)]


def steps_per_epoch(p, batch_size: int) -> int:
    """Training steps in one pass over the profile's image list at `batch_size` (epoch marks on loss curves)."""
    return max(1, len(training_images(p)) // batch_size)


def searle_images(p, subset_seed: int = 0) -> list[str]:
    """SEARLE's training images: `searle.oti_images` of the list, the same for every seed (methods/searle)."""
    return oti_subset(training_images(p), p.searle.oti_images, subset_seed)


def searle_phrases(p, clip: FrozenClip) -> ConceptPhrases:
    """SEARLE's concepts and phrases, from the training captions (concepts.py), for `clip`."""
    return phrases_for(clip, training_captions(p), p.searle)


def training_triplets(p, source: str) -> LabeledTriplets:
    """A triplet source's labeled training triplets (Combiner's): Fashion-IQ's `cap.*.train.json` over
    every category, or CIRR's `cap.rc2.train.json` (the demo world writes analogues in the same files).
    Triplets whose image is missing are left out and counted; more than eval.max_bad_fraction of them
    is an error. A training image that is also in an evaluation split is refused: a supervised row
    must never see what it is scored on."""
    readers = {"fashion_iq": _fashion_iq_triplets, "cirr": _cirr_triplets}
    if source not in readers:
        raise ValueError(f"no labeled training triplets for {source!r}; known: {sorted(readers)}")
    where, rows = readers[source](p.world_dir)
    kept = [r for r in rows if r is not None]
    total, lost = len(rows), len(rows) - len(kept)
    if lost:
        log.warning("%s: %d of %d triplets have a missing image and are left out", where, lost, total)
    if lost > p.eval.max_bad_fraction * total:
        raise BadImagesError(
            f"{where}: {lost} of {total} triplets have a missing image, more than eval.max_bad_fraction "
            f"({p.eval.max_bad_fraction:.1%}); restore the images or raise the fraction"
        )
    refs, tgts, caps = zip(*kept) if kept else ((), (), ())
    return LabeledTriplets(source, tuple(refs), tuple(tgts), tuple(caps))


def _refuse_leak(where: str, images: set, evaluated: set, split: str) -> None:
    leaked = images & evaluated
    if leaked:
        raise ValueError(
            f"{where}: training image(s) {sorted(leaked)[:5]} are in the {split} split; the training "
            "triplets must not share images with an evaluation"
        )


def _fashion_iq_triplets(world: Path):
    """(where, [(reference, target, captions), or None where an image is missing])."""
    root = world / "fashion-iq"
    files = image_index(root / "images")
    rows = []
    for category in CATEGORIES:
        evaluated = set(read_split(root, category, "val"))
        for t in read_triplets(root, category, "train"):
            _refuse_leak(
                f"{root}/captions/cap.{category}.train.json", {t.candidate, t.target}, evaluated, f"{category} val"
            )
            ok = t.candidate in files and t.target in files
            rows.append((files[t.candidate], files[t.target], tuple(t.captions)) if ok else None)
    return f"fashion-iq train under {root}", rows


def _cirr_triplets(world: Path):
    """CIRR's training queries (one caption each), as _fashion_iq_triplets."""
    root = world / "cirr"
    files = read_image_split(root, "train")
    evaluated = set(read_image_split(root, "val")) | set(_optional_split(root, "test1"))
    rows = []
    for q in read_cirr_queries(root, "train"):
        _refuse_leak(f"{root}/captions/cap.rc2.train.json", {q.reference, q.target}, evaluated, "val or test1")
        ok = q.reference in files and q.target in files and files[q.reference].is_file() and files[q.target].is_file()
        rows.append((str(files[q.reference]), str(files[q.target]), (q.caption,)) if ok else None)
    return f"cirr train under {root}", rows


def _optional_split(root: Path, split: str) -> dict:
    """A CIRR image split that may be absent (the demo world has no test1)."""
    return read_image_split(root, split) if (root / "image_splits" / f"split.rc2.{split}.json").is_file() else {}
