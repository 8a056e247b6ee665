"""Pic2Word's COCO object composition.

Each query is one object cut out of a val2017 image (masked crop, see datasets/coco.py) plus
class names; the target is the image it was cut from; the gallery is every image that has a query.
Recall@1/5/10 (hit rate). Texts, as the official evaluation encodes them (`data.py`, `CsvCOCO`):
- Pic2Word: `a photo of * and {query class} and {other classes joined by " and "}`;
- text only and image + text: `a photo of {query class} and {other classes}`.
An image with no other class keeps the trailing ` and ` (the original formats an empty list).
`prompt="class_free"` is an extra the original builds but never evaluates:
`a photo of * and {other classes}` (baselines: `a photo of and {other classes}`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.data.coco import ObjectQuery, query_crop_path, read_queries
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import TokenMappers, compose_queries
from p2w_lib.protocols.common import (
    embed_gallery,
    embed_queries,
    log_counts,
    methods_document,
    rank_and_score,
)
from p2w_lib.retrieval.metrics import relevance_from_sets

log = logging.getLogger(__name__)

PROMPTS = {
    "with_class": ("a photo of * and {query_class} and {objects}", "a photo of {query_class} and {objects}"),
    "class_free": ("a photo of * and {objects}", "a photo of and {objects}"),
}
KS = (1, 5, 10)


def texts_for(q: ObjectQuery, prompt: str = "with_class") -> tuple[str, str]:
    """(Pic2Word prompt, baseline text) of a query."""
    if prompt not in PROMPTS:
        raise ValueError(f"COCO prompt {prompt!r}; choose from {tuple(PROMPTS)} ('with_class' is the paper's)")
    fields = {"query_class": q.query_class, "objects": " and ".join(q.other_classes)}
    return tuple(t.format(**fields) for t in PROMPTS[prompt])


def evaluate_coco_objects(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers | None,
    root: str | Path,
    queries_dir: str | Path,
    ks: Sequence[int] = KS,
    cache_dir: str | Path | None = None,
    max_bad_fraction: float = 0.01,
    profile: str = "paper",
    seed: int = 0,
    methods: Sequence[str] | None = None,  # None: every method the given networks allow
    prompt: str = "with_class",
) -> dict:
    """Recall@K per method; `root` holds val2017/, `queries_dir` the prepared coco_eval.csv and query_crops/."""
    root = Path(root)
    queries = read_queries(queries_dir)
    names = [q.file_name for q in queries]
    gallery = embed_gallery(
        clip,
        names,
        [str(root / "val2017" / n) for n in names],
        cache_dir,
        max_bad_fraction,
        "embedding COCO val2017 targets",
    )
    crops, ok = embed_queries(
        clip,
        [str(query_crop_path(queries_dir, n)) for n in names],
        cache_dir,
        max_bad_fraction,
        "embedding COCO query crops",
    )
    rows = gallery.rows()
    keep = [i for i, q in enumerate(queries) if ok[i] and q.file_name in rows]
    if not keep:
        raise ValueError(f"COCO objects under {root}: no query has both its crop and its image readable")
    usable = [queries[i] for i in keep]
    log_counts("COCO objects", len(usable), len(queries) - len(usable))
    prompts, texts = (list(x) for x in zip(*[texts_for(q, prompt) for q in usable]))
    feats = compose_queries(
        clip, mapper, crops[keep], prompts, text_only=texts, methods=methods, benchmark="coco_objects"
    )
    targets = [{rows[q.file_name]} for q in usable]
    scores = rank_and_score(
        feats, gallery.feats, lambda idx: relevance_from_sets(idx, targets), "hit_rate", ks, precision_k=None
    )
    return methods_document(
        profile,
        seed,
        "hit_rate",
        scores,
        n_queries=len(usable),
        n_queries_skipped=len(queries) - len(usable),
        n_gallery=len(gallery.keys),
        n_gallery_skipped=gallery.skipped,
        prompt=prompt,
    )
