"""What each trained method learns from: the profile's CC3M(-like) image-caption list (the zero-shot
methods), or its labeled training triplets (the supervised Combiner)."""

from __future__ import annotations

import logging

from p2w_lib.clip.backbone import FrozenClip
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
    """A triplet source's labeled training triplets (Combiner's): Fashion-IQ's `cap.*.train.json`
    over every category (the demo world writes its analogue in the same files). Triplets whose image
    is missing are left out and counted; more than eval.max_bad_fraction of them is an error. A
    training image that is also in an evaluation split is refused: a supervised row must never see
    what it is scored on."""
    if source != "fashion_iq":
        raise ValueError(f"no labeled training triplets for {source!r} in this profile; known: ['fashion_iq']")
    root = p.world_dir / "fashion-iq"
    files = image_index(root / "images")
    refs, tgts, caps, lost, total = [], [], [], 0, 0
    for category in CATEGORIES:
        evaluated = set(read_split(root, category, "val"))
        for t in read_triplets(root, category, "train"):
            total += 1
            leaked = {t.candidate, t.target} & evaluated
            if leaked:
                raise ValueError(
                    f"{root}/captions/cap.{category}.train.json: training image(s) {sorted(leaked)} are in the "
                    f"{category} val split; the training triplets must not share images with an evaluation"
                )
            if t.candidate not in files or t.target not in files:
                lost += 1
                continue
            refs.append(files[t.candidate])
            tgts.append(files[t.target])
            caps.append(tuple(t.captions))
    if lost:
        log.warning("fashion-iq train: %d of %d triplets have a missing image and are left out", lost, total)
    if lost > p.eval.max_bad_fraction * total:
        raise BadImagesError(
            f"fashion-iq train: {lost} of {total} triplets have a missing image under {root / 'images'}, more than "
            f"eval.max_bad_fraction ({p.eval.max_bad_fraction:.1%}); restore the images or raise the fraction"
        )
    return LabeledTriplets(source, tuple(refs), tuple(tgts), tuple(caps))
