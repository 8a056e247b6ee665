"""The demo world's CIRR analogue: photos of objects in image sets of six, relative captions, and
CIRR's files (`cirr/captions/cap.rc2.{split}.json`, `cirr/image_splits/split.rc2.{split}.json`).

An image set is a base object and five variants, each one or two attributes (class, colour,
pattern, size) away from it, as CIRR's sets gather similar images so that Recall_subset asks for the
fine difference. A query goes from one member to another (base to variant, or back), with a caption
naming every change. In the val split no two images show the same attribute combination, so each
caption has exactly one true target in the gallery; the training split (Combiner's triplets) repeats
combinations across sets, as it needs more sets than there are combinations, and comes from a
stream of its own: other renders, never an evaluation image.
"""

from __future__ import annotations

import random
from pathlib import Path

from p2w_lib.demo.captions import object_changes, relative_object_caption
from p2w_lib.demo.world import CLASSES, OBJECT_COLOURS, PATTERNS, PHOTO, SIZES, ObjectSpec, sample_object

SET_SIZE = 6  # CIRR's image sets have six members
ATTRIBUTES = {"cls": CLASSES, "colour": OBJECT_COLOURS, "pattern": PATTERNS, "size": SIZES}
N_COMBINATIONS = len(CLASSES) * len(OBJECT_COLOURS) * len(PATTERNS) * len(SIZES)


def _key(spec: ObjectSpec) -> tuple:
    return tuple(getattr(spec, k) for k in ATTRIBUTES)


def _variant(rng: random.Random, base: ObjectSpec) -> ObjectSpec:
    """Another photo of `base` with one or two attributes changed (a new position and render)."""
    values = {k: getattr(base, k) for k in ATTRIBUTES}
    for key in rng.sample(list(ATTRIBUTES), rng.choice([1, 1, 2])):
        values[key] = rng.choice([v for v in ATTRIBUTES[key] if v != values[key]])
    spec = sample_object(rng, values["cls"], PHOTO, size=values["size"])  # its position fits its size
    return ObjectSpec(**{**spec.to_dict(), "colour": values["colour"], "pattern": values["pattern"]})


def _image_set(rng: random.Random, used: set) -> list[ObjectSpec]:
    """A base photo and five variants, none of an attribute combination already in `used`."""
    while True:
        base = sample_object(rng, rng.choice(CLASSES), PHOTO)
        if _key(base) not in used:
            break
    members, keys = [base], {_key(base)}
    for _ in range(1000 * SET_SIZE):
        if len(members) == SET_SIZE:
            break
        spec = _variant(rng, base)
        if _key(spec) not in used | keys:
            members.append(spec)
            keys.add(_key(spec))
    if len(members) < SET_SIZE:
        raise ValueError("cirr: no room for another image set; lower world.cirr_val_sets or cirr_train_sets")
    used |= keys
    return members


def cirr_split(rng: random.Random, split: str, n_sets: int, root: Path):
    """Specs and file paths of `n_sets` image sets, and their queries as CIRR caption entries."""
    unique = split == "val"
    if unique and n_sets * SET_SIZE > N_COMBINATIONS:
        raise ValueError(
            f"cirr {split}: {n_sets} image sets of {SET_SIZE} need {n_sets * SET_SIZE} distinct objects, "
            f"but the world has {N_COMBINATIONS}; lower world.cirr_{split}_sets"
        )
    folder = "dev" if split == "val" else "train"
    used: set = set()
    images, entries = {}, []
    for s in range(n_sets):
        members = _image_set(rng, used if unique else set())
        names = [f"{folder}-{s}-{m}-img{m}" for m in range(SET_SIZE)]
        sub = f"./{folder}/{s // 100}" if split == "train" else f"./{folder}"  # CIRR's train folders hold sets
        for name, spec in zip(names, members):
            images[name] = (spec, f"{sub}/{name}.png")
        order = list(range(1, SET_SIZE))
        rng.shuffle(order)
        # Base -> variant twice, variant -> base once: every caption names one or two changes.
        for ref, tgt in ((0, order[0]), (0, order[1]), (order[2], 0)):
            entries.append(_entry(len(entries), s, names, ref, tgt, members, rng))
    return images, entries


def _entry(pairid: int, set_id: int, names: list[str], ref: int, tgt: int, members, rng) -> dict:
    assert object_changes(members[ref], members[tgt])
    return {
        "pairid": pairid,
        "reference": names[ref],
        "target_hard": names[tgt],
        "target_soft": {names[tgt]: 1.0},
        "caption": relative_object_caption(members[ref], members[tgt], rng),
        "img_set": {"id": set_id, "members": list(names), "reference_rank": ref, "target_rank": tgt},
    }
