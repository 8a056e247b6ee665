"""The demo world's vocabulary and scene specifications.

Objects (16 classes) are drawn in a `photo` domain plus four rendition domains that play the
roles of ImageNet-R's cartoon/origami/toy/sculpture. Garments (dress, shirt, toptee) play
Fashion-IQ. Every image is a pure function of its spec, and every spec of a seeded RNG.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

CLASSES = (
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "arrow",
    "moon",
    "cross",
    "diamond",
    "ring",
    "bolt",
    "house",
    "cloud",
    "tree",
    "drop",
    "key",
)
PHOTO = "photo"
RENDITIONS = ("sketch", "cartoon", "mosaic", "neon")  # label index 0..3, as ImageNet-R's four domains
DOMAINS = (PHOTO,) + RENDITIONS
PHOTO_DOMAIN_INDEX = 6  # Pic2Word's lists give real images domain index 6

COLOURS = {
    "red": (214, 40, 40),
    "orange": (245, 130, 20),
    "yellow": (240, 210, 30),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "purple": (130, 50, 170),
    "pink": (240, 120, 180),
    "black": (30, 30, 30),
    "white": (245, 245, 245),
    "brown": (120, 75, 40),
}
OBJECT_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
PATTERNS = ("solid", "striped", "dotted", "checked")
SIZES = ("small", "large")

GARMENTS = ("dress", "shirt", "toptee")
SLEEVES = ("sleeveless", "short", "long")
NECKLINES = ("round", "v")
LENGTHS = ("short", "long")  # dresses only
LOGO_COLOURS = ("white", "black", "red", "yellow")

# What a domain shows, so captions stay truthful (a sketch has no colour).
VISIBLE = {
    "photo": ("size", "colour", "pattern"),
    "sketch": ("size",),
    "cartoon": ("size", "colour", "pattern"),
    "mosaic": ("colour",),
    "neon": ("colour",),
}


@dataclass(frozen=True)
class ObjectSpec:
    cls: str
    domain: str
    colour: str
    pattern: str
    size: str
    x: float  # centre, fraction of the image
    y: float
    angle: float  # degrees
    seed: int  # background and noise

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GarmentSpec:
    category: str
    colour: str
    pattern: str
    sleeve: str
    neckline: str
    length: str  # "" for shirts and tops
    logo: str  # "" = no logo, else the logo colour
    seed: int

    def attributes(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("category", "seed")}

    def to_dict(self) -> dict:
        return asdict(self)


def sample_object(rng: random.Random, cls: str, domain: str, size: str | None = None) -> ObjectSpec:
    drawn = rng.choice(SIZES)  # drawn even when `size` is given: the stream stays as it was
    size = size or drawn
    margin = 0.34 if size == "large" else 0.24
    return ObjectSpec(
        cls=cls,
        domain=domain,
        colour=rng.choice(OBJECT_COLOURS),
        pattern=rng.choice(PATTERNS),
        size=size,
        x=rng.uniform(margin, 1 - margin),
        y=rng.uniform(margin, 1 - margin),
        angle=rng.uniform(-20, 20),
        seed=rng.getrandbits(31),
    )


def garment_space(category: str) -> list[dict]:
    """Every attribute combination of a garment category (the set a gallery samples from)."""
    lengths = LENGTHS if category == "dress" else ("",)
    return [
        dict(colour=c, pattern=p, sleeve=s, neckline=n, length=ln, logo=lg)
        for c in COLOURS
        for p in PATTERNS
        for s in SLEEVES
        for n in NECKLINES
        for ln in lengths
        for lg in ("",) + LOGO_COLOURS
        if lg != c  # a logo in the garment's own colour would be invisible
    ]


def sample_garment(rng: random.Random, category: str) -> GarmentSpec:
    attrs = rng.choice(garment_space(category))
    return GarmentSpec(category=category, seed=rng.getrandbits(31), **attrs)
