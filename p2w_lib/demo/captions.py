"""Captions for the demo world: truthful per domain, and covering the grammar queries use.

Pretraining captions must contain the phrasings that composed queries later use (`a sketch of
a star`, `a photo of a dress , is red and has long sleeves`), or CLIP never learns to compose
them. Relative captions follow Fashion-IQ's annotator style (`is red with a white logo`).
"""

from __future__ import annotations

import random

from p2w_lib.demo.world import VISIBLE, GarmentSpec, ObjectSpec


def _pattern_word(pattern: str) -> str:
    return "plain" if pattern == "solid" else pattern


def object_caption(spec: ObjectSpec, rng: random.Random, drop: float = 0.3, colour_drop: float | None = None) -> str:
    """A CC3M-style title; each visible attribute is dropped with probability `drop` (the colour
    with `colour_drop`, when given)."""
    visible = VISIBLE[spec.domain]
    colour_drop = drop if colour_drop is None else colour_drop
    words = {
        "size": spec.size if "size" in visible and rng.random() > drop else "",
        "colour": spec.colour if "colour" in visible and rng.random() > colour_drop else "",
        "pattern": _pattern_word(spec.pattern) if "pattern" in visible and rng.random() > drop else "",
    }
    form = rng.random()
    if form < 0.5 or not (words["colour"] or words["pattern"]):
        adjectives = " ".join(w for w in (words["size"], words["colour"], words["pattern"]) if w)
        return f"a {spec.domain} of a {adjectives + ' ' if adjectives else ''}{spec.cls}"
    traits = " and ".join(w for w in (words["colour"], words["pattern"]) if w)
    prefix = f"a {spec.domain} of a {words['size'] + ' ' if words['size'] else ''}{spec.cls}"
    return f"{prefix} that is {traits}" if form < 0.75 else f"{prefix} , is {traits}"


def garment_phrases(spec: GarmentSpec) -> dict[str, str]:
    """One relative phrase per attribute, in Fashion-IQ's style."""
    sleeve = "is sleeveless" if spec.sleeve == "sleeveless" else f"has {spec.sleeve} sleeves"
    return {
        "colour": f"is {spec.colour}",
        "pattern": f"is {_pattern_word(spec.pattern)}",
        "sleeve": sleeve,
        "neckline": "has a v-neck" if spec.neckline == "v" else "has a round neck",
        "length": f"is {spec.length}" if spec.length else "",
        "logo": f"has a {spec.logo} logo" if spec.logo else "has no logo",
    }


def garment_caption(spec: GarmentSpec, rng: random.Random, drop: float = 0.3) -> str:
    """A title for a garment photo, in one of three grammars (adjectives, `that ...`, `, ...`)."""
    phrases = [p for k, p in garment_phrases(spec).items() if p and rng.random() > drop]
    rng.shuffle(phrases)
    if rng.random() < 0.4 or not phrases:
        adjectives = " ".join(
            w
            for w in (
                spec.colour if rng.random() > drop else "",
                _pattern_word(spec.pattern) if rng.random() > drop else "",
            )
            if w
        )
        return f"a photo of a {adjectives + ' ' if adjectives else ''}{spec.category}"
    joined = _join(phrases, rng)  # the same grammar as relative captions ("is red with a white logo")
    return (
        f"a photo of a {spec.category} that {joined}"
        if rng.random() < 0.5
        else f"a photo of a {spec.category} , {joined}"
    )


def changed_attributes(candidate: GarmentSpec, target: GarmentSpec) -> list[str]:
    return [k for k, v in target.attributes().items() if candidate.attributes()[k] != v]


def relative_captions(candidate: GarmentSpec, target: GarmentSpec, rng: random.Random) -> list[str]:
    """Two annotator captions; together they name every change from candidate to target."""
    phrases = garment_phrases(target)
    changes = [phrases[k] for k in changed_attributes(candidate, target)]
    if not changes:
        raise ValueError("candidate and target are the same garment")
    rng.shuffle(changes)
    if len(changes) == 1:
        first, second = changes, changes  # both annotators describe the one change
    else:
        cut = rng.randint(1, len(changes) - 1)
        first, second = changes[:cut], changes[cut:]
    return [_join(first, rng), _join(second, rng)]


def _join(phrases: list[str], rng: random.Random) -> str:
    """Join phrases with "and", sometimes turning a trailing "has a X" into "with a X" ("is red with a white logo")."""
    if len(phrases) >= 2 and phrases[-1].startswith("has a ") and rng.random() < 0.5:
        return " and ".join(phrases[:-1]) + f" with a {phrases[-1][len('has a ') :]}"
    return " and ".join(phrases)


def oracle_object_text(cls: str, domain: str) -> str:
    """Text that names the true class and target domain: the headroom row of the demo."""
    return f"a {domain} of a {cls}"


def oracle_garment_text(target: GarmentSpec) -> str:
    phrases = [p for p in garment_phrases(target).values() if p]
    return f"a photo of a {target.category} , " + " and ".join(phrases)


def object_changes(reference: ObjectSpec, target: ObjectSpec) -> list[str]:
    return [k for k in ("cls", "colour", "pattern", "size") if getattr(reference, k) != getattr(target, k)]


def relative_object_caption(reference: ObjectSpec, target: ObjectSpec, rng: random.Random) -> str:
    """One annotator caption naming every change from reference to target, in CIRR's style: the new
    value alone (`is blue`) or against the old one (`is blue instead of red`, `the same but a star`)."""
    phrases = []
    for key in object_changes(reference, target):
        old, new = getattr(reference, key), getattr(target, key)
        if key == "cls":
            phrases.append(f"is a {new}" if rng.random() < 0.5 else f"the same but a {new}")
            continue
        if key == "pattern":
            old, new = _pattern_word(old), _pattern_word(new)
        phrases.append(f"is {new}" if rng.random() < 0.5 else f"is {new} instead of {old}")
    if not phrases:
        raise ValueError("reference and target show the same object")
    rng.shuffle(phrases)
    return " and ".join(phrases)
