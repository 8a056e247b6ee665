"""CIRR, as its official evaluation server defines it.

Validation: the gallery is every val image; each query's reference image is removed from its own
ranking; Recall@1/5/10/50 (hit rate of the one target). Recall_subset@1/2/3 ranks only the
query's `img_set.members` without the reference. Pic2Word's prompt is `a photo of * , {caption}`.
Test1 has no public targets: `write_test_submission` writes the two files the server takes,
`{"version": "rc2", "metric": "recall" | "recall_subset", "<pairid>": [image names]}`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.data.cirr import CirrQuery, read_image_split, read_queries
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import TokenMappers
from p2w_lib.protocols.common import (
    Gallery,
    caption_queries,
    embed_gallery,
    log_counts,
    methods_document,
    own_protocols,
    rank_and_score,
)
from p2w_lib.protocols.comparisons import compare_to_baseline, per_query_hits
from p2w_lib.protocols.submissions import (
    CIRR_LIST_LENGTH,
    check_cirr_submission,
    write_submission,
)
from p2w_lib.retrieval.metrics import relevance_from_sets
from p2w_lib.retrieval.topk import topk_search

log = logging.getLogger(__name__)

PROMPT = "a photo of * , {caption}"
# {family: prompt}: Pic2Word's, and SEARLE's and LinCIR's own (`a photo of $ that {caption}`, eval.prompts)
PROMPTS = {"pic2word": PROMPT, "searle": "a photo of * that {caption}"}
KS = (1, 5, 10, 50)
SUBSET_KS = (1, 2, 3)


def _gallery(clip: FrozenClip, root: Path, split: str, cache_dir, max_bad_fraction: float) -> Gallery:
    files = read_image_split(root, split)
    names = sorted(files)
    return embed_gallery(
        clip, names, [str(files[n]) for n in names], cache_dir, max_bad_fraction, f"embedding CIRR {split} images"
    )


def subset_ranking(query: torch.Tensor, gallery: Gallery, q: CirrQuery, k: int) -> list[str]:
    """The top-k of the query's image set (reference removed), best first."""
    rows = gallery.rows()
    members = [m for m in dict.fromkeys(q.members) if m != q.reference and m in rows]
    scores = gallery.feats[torch.tensor([rows[m] for m in members], dtype=torch.long)] @ query  # [M]
    order = torch.argsort(scores, descending=True, stable=True)[:k]
    return [members[i] for i in order.tolist()]


def recall_subset(
    feats: torch.Tensor, gallery: Gallery, queries: Sequence[CirrQuery], ks: Sequence[int] = SUBSET_KS
) -> dict[str, float]:
    hits = {k: 0 for k in ks}
    for query, q in zip(feats, queries):
        ranked = subset_ranking(query, gallery, q, max(ks))
        for k in ks:
            hits[k] += q.target in ranked[:k]
    return {f"Rs@{k}": 100.0 * hits[k] / len(queries) for k in ks}


def evaluate_cirr(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers | None,
    root: str | Path,
    ks: Sequence[int] = KS,
    subset_ks: Sequence[int] = SUBSET_KS,
    cache_dir: str | Path | None = None,
    max_bad_fraction: float = 0.01,
    profile: str = "paper",
    seed: int = 0,
    methods: Sequence[str] | None = None,  # None: every method the given networks allow
    prompts: str = "own",  # eval.prompts: each method under its own paper's prompts, or all under one family
) -> dict:
    """Recall@K and Recall_subset@K on the val split for each query method."""
    root = Path(root)
    queries = read_queries(root, "val")
    gallery = _gallery(clip, root, "val", cache_dir, max_bad_fraction)
    rows = gallery.rows()
    usable = [q for q in queries if q.reference in rows and q.target in rows]
    if not usable:
        raise ValueError(f"CIRR val under {root}: no query has both its reference and target image readable")
    log_counts("CIRR val", len(usable), len(queries) - len(usable))
    feats = caption_queries(
        clip,
        mapper,
        gallery,
        [q.reference for q in usable],
        [q.caption for q in usable],
        PROMPTS,
        methods,
        "cirr",
        prompts,
    )
    exclude = torch.tensor([rows[q.reference] for q in usable])
    targets = [{rows[q.target]} for q in usable]
    rel: dict[str, torch.Tensor] = {}  # method -> [Q, K], for the paired comparisons
    scores = rank_and_score(
        feats,
        gallery.feats,
        lambda idx: relevance_from_sets(idx, targets),
        "hit_rate",
        ks,
        precision_k=None,
        exclude=exclude,
        per_query=rel,
    )
    k_max = next(iter(rel.values())).shape[1]
    hits = {"val": {m: {k: per_query_hits(r, k) for k in ks if k <= k_max} for m, r in rel.items()}}  # one group
    for method, f in feats.items():
        scores[method].update(recall_subset(f, gallery, usable, subset_ks))
    return methods_document(
        profile,
        seed,
        "hit_rate",
        scores,
        n_queries=len(usable),
        n_queries_skipped=len(queries) - len(usable),
        n_gallery=len(gallery.keys),
        n_gallery_skipped=gallery.skipped,
        prompts=prompts,
        protocols=own_protocols(scores) if prompts == "own" else {m: prompts for m in scores},
        comparisons=compare_to_baseline(hits, ks, seed),
        comparisons_to_pic2word=compare_to_baseline(hits, ks, seed, baseline="pic2word"),
    )


def write_test_submission(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers | None,
    root: str | Path,
    out_dir: str | Path,
    method: str = "pic2word",
    cache_dir: str | Path | None = None,
    max_bad_fraction: float = 0.01,
    prompts: str = "own",
) -> dict[str, Path]:
    """The two test1 files for the CIRR server: top-50 over all test1 images, top-3 within the set."""
    root, out_dir = Path(root), Path(out_dir)
    queries = read_queries(root, "test1")
    gallery = _gallery(clip, root, "test1", cache_dir, max_bad_fraction)
    rows = gallery.rows()
    missing = [q.pairid for q in queries if q.reference not in rows]
    if missing:  # the server scores every pairid: a partial file would be scored as misses
        raise FileNotFoundError(
            f"CIRR test1: {len(missing)} queries have no readable reference image (pairids {missing[:5]}); "
            f"restore the images under {root} before writing a submission"
        )
    top_k = CIRR_LIST_LENGTH["recall"]
    if len(gallery.keys) - 1 < top_k:
        raise ValueError(
            f"CIRR test1: {len(gallery.keys)} readable images under {root}; the server needs the top "
            f"{top_k} of the test1 images (reference excluded) for every query"
        )
    feats = caption_queries(
        clip,
        mapper,
        gallery,
        [q.reference for q in queries],
        [q.caption for q in queries],
        PROMPTS,
        (method,),
        "cirr",
        prompts,
    )[method]
    _, idx = topk_search(feats, gallery.feats, k=top_k, exclude=torch.tensor([rows[q.reference] for q in queries]))
    files = {
        "recall": {str(q.pairid): [gallery.keys[i] for i in row.tolist()] for q, row in zip(queries, idx)},
        "recall_subset": {
            str(q.pairid): subset_ranking(f, gallery, q, CIRR_LIST_LENGTH["recall_subset"])
            for q, f in zip(queries, feats)
        },
    }
    paths = {}
    for metric, lists in files.items():
        submission = {"version": "rc2", "metric": metric, **lists}
        check_cirr_submission(submission, [q.pairid for q in queries], metric)
        paths[metric] = write_submission(out_dir / f"cirr_test1_{metric}_{method}.json", submission)
    return paths
