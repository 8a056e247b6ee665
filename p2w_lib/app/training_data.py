"""What each trained method learns from, read from the profile's CC3M(-like) image-caption list."""

from __future__ import annotations

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.methods.searle import oti_subset, phrases_for
from p2w_lib.methods.searle.concepts import ConceptPhrases


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
