"""Labeled triplets (reference image, relative caption(s), target image) and the caption texts
Combiner reads, as CLIP4Cir forms them (`utils.generate_randomized_fiq_caption`, `validate.py`).

Fashion-IQ's two captions c1, c2 are stripped of `.?, ` at both ends and the first text is
capitalised; training draws one of four forms per triplet and step (`C1 and c2`, `C2 and c1`, `C1`,
`C2`, each a quarter of the time), evaluation uses the first. CIRR's one caption is used as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

SOURCES = ("fashion_iq", "cirr")  # the triplet sources a Combiner trains on


def _clean(caption: str) -> str:
    return caption.strip(".?, ")


def training_forms(captions: Sequence[str]) -> tuple[str, ...]:
    """The texts training draws from for one triplet: four forms of two captions, or the one caption."""
    if len(captions) == 1:
        return (captions[0],)
    if len(captions) != 2:
        raise ValueError(f"a triplet has one caption (CIRR) or two (Fashion-IQ), got {len(captions)}")
    c1, c2 = (_clean(c) for c in captions)
    return (f"{c1.capitalize()} and {c2}", f"{c2.capitalize()} and {c1}", c1.capitalize(), c2.capitalize())


def query_caption(captions: Sequence[str]) -> str:
    """The text a query is composed with: the first training form (`C1 and c2`, or the caption)."""
    return training_forms(captions)[0]


@dataclass(frozen=True)
class LabeledTriplets:
    """A training set of triplets. references/targets: image paths; captions: each triplet's caption(s)."""

    source: str  # one of SOURCES, where the triplets come from
    references: tuple[str, ...]
    targets: tuple[str, ...]
    captions: tuple[tuple[str, ...], ...]

    def __post_init__(self):
        if not len(self.references) == len(self.targets) == len(self.captions):
            raise ValueError(
                f"{self.source}: {len(self.references)} references, {len(self.targets)} targets and "
                f"{len(self.captions)} captions; each triplet needs all three"
            )

    def __len__(self) -> int:
        return len(self.references)

    @property
    def identity(self) -> str:
        """sha256 of the source, every path and every caption, in order: another list is another run."""
        h = hashlib.sha256(self.source.encode() + b"\0")
        for ref, tgt, caps in zip(self.references, self.targets, self.captions):
            h.update("\0".join((ref, tgt, *caps)).encode() + b"\1")
        return h.hexdigest()
