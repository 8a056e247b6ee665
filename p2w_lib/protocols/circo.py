"""CIRCO, as its official evaluation defines it.

The gallery is COCO's unlabeled2017 set (the reference image stays in it); each validation query
has several ground truths; AP@K = sum_{k<=K} P@k * rel(k) / min(K, |GT|) and mAP@5/10/25/50
averages it over queries, with |GT| = len(gt_img_ids) as annotated (repeats counted, missing images
counted). As the official `evaluation.py`, the results also carry Recall@K of the one target image
(`target_img_id`) and mAP@10 per semantic aspect (the mean over the queries tagged with it). The
prompt is Pic2Word's CIRR prompt `a photo of * , {caption}` (Pic2Word did not evaluate CIRCO).
Test: `write_test_submission` writes `{"<query id>": [top-50 image ids]}` for the server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.data.circo import CircoQuery, read_gallery, read_queries
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
from p2w_lib.protocols.submissions import check_circo_submission, write_submission
from p2w_lib.retrieval.metrics import average_precision, relevance_from_sets
from p2w_lib.retrieval.topk import topk_search

log = logging.getLogger(__name__)

PROMPT = "a photo of * , {caption}"
# {family: prompt}: Pic2Word's, and SEARLE's and LinCIR's own (`a photo of $ that {caption}`, eval.prompts)
PROMPTS = {"pic2word": PROMPT, "searle": "a photo of * that {caption}"}
KS = (5, 10, 25, 50)
SEMANTIC_ASPECTS = (
    "cardinality",
    "addition",
    "negation",
    "direct_addressing",
    "compare_change",
    "comparative_statement",
    "statement_with_conjunction",
    "spatial_relations_background",
    "viewpoint",
)
ASPECT_K = 10
SUBMISSION_TOP_K = 50


def _gallery(clip: FrozenClip, root: Path, cache_dir, max_bad_fraction: float) -> Gallery:
    files = read_gallery(root)
    ids = sorted(files)
    return embed_gallery(
        clip, ids, [str(files[i]) for i in ids], cache_dir, max_bad_fraction, "embedding CIRCO gallery (unlabeled2017)"
    )


def evaluate_circo(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers | None,
    root: str | Path,
    ks: Sequence[int] = KS,
    cache_dir: str | Path | None = None,
    max_bad_fraction: float = 0.01,
    profile: str = "paper",
    seed: int = 0,
    methods: Sequence[str] | None = None,  # None: every method the given networks allow
    prompts: str = "own",  # eval.prompts: each method under its own paper's prompts, or all under one family
) -> dict:
    """mAP@K on the val split for each query method."""
    root = Path(root)
    queries = read_queries(root, "val")
    gallery = _gallery(clip, root, cache_dir, max_bad_fraction)
    rows = gallery.rows()
    usable = [q for q in queries if q.reference in rows and any(g in rows for g in q.ground_truth)]
    if not usable:
        raise ValueError(f"CIRCO val under {root}: no query has its reference and a ground-truth image readable")
    missing_gt = sum(g not in rows for q in usable for g in q.ground_truth)
    log_counts("CIRCO val", len(usable), len(queries) - len(usable))
    if missing_gt:
        log.warning("CIRCO val: %d ground-truth images missing from the gallery (still counted in |GT|)", missing_gt)
    feats = caption_queries(
        clip,
        mapper,
        gallery,
        [q.reference for q in usable],
        [q.caption for q in usable],
        PROMPTS,
        methods,
        "circo",
        prompts,
    )
    targets = [{rows[g] for g in q.ground_truth if g in rows} for q in usable]
    n_gt = torch.tensor([len(q.ground_truth) for q in usable])  # the official |GT|: as annotated, readable or not

    def relevance(idx):
        rel, _ = relevance_from_sets(idx, targets)
        return rel, n_gt

    scores = rank_and_score(feats, gallery.feats, relevance, "map", ks, precision_k=None)
    k_max = min(max(ks), len(gallery.keys))
    target_rows = [{rows[q.target]} if q.target in rows else set() for q in usable]
    for method, f in feats.items():
        _, idx = topk_search(f, gallery.feats, k=k_max)  # [Q, k_max]
        scores[method].update(target_recall(idx, target_rows, [k for k in ks if k <= k_max]))
        if k_max >= ASPECT_K:
            scores[method]["semantic_mAP@10"] = aspect_map(relevance(idx), usable)
    return methods_document(
        profile,
        seed,
        "map",
        scores,
        n_queries=len(usable),
        n_queries_skipped=len(queries) - len(usable),
        n_ground_truth_missing=missing_gt,
        n_gallery=len(gallery.keys),
        n_gallery_skipped=gallery.skipped,
        prompts=prompts,
        protocols=own_protocols(scores) if prompts == "own" else {m: prompts for m in scores},
    )


def target_recall(idx: torch.Tensor, target_rows: Sequence[set], ks: Sequence[int]) -> dict[str, float]:
    """Recall@K of each query's one target image (a missing target is a miss), in percent."""
    hit_rank = [next((r for r, i in enumerate(row.tolist()) if i in t), None) for row, t in zip(idx, target_rows)]
    return {f"R@{k}": 100.0 * sum(r is not None and r < k for r in hit_rank) / len(hit_rank) for k in ks}


def aspect_map(rel_and_n_gt, queries: Sequence[CircoQuery]) -> dict[str, float]:
    """mAP@10 over the queries tagged with each semantic aspect; None for an aspect no query has."""
    ap = average_precision(*rel_and_n_gt, ASPECT_K)  # [Q]
    out = {}
    for aspect in SEMANTIC_ASPECTS:
        tagged = [i for i, q in enumerate(queries) if aspect in q.semantic_aspects]
        out[aspect] = 100.0 * ap[tagged].mean().item() if tagged else None
    return out


def write_test_submission(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers | None,
    root: str | Path,
    out_dir: str | Path,
    method: str = "pic2word",
    cache_dir: str | Path | None = None,
    max_bad_fraction: float = 0.01,
    prompts: str = "own",
) -> Path:
    root, out_dir = Path(root), Path(out_dir)
    queries = read_queries(root, "test")
    gallery = _gallery(clip, root, cache_dir, max_bad_fraction)
    rows = gallery.rows()
    missing = [q.id for q in queries if q.reference not in rows]
    if missing:
        raise FileNotFoundError(
            f"CIRCO test: {len(missing)} queries have no readable reference image (ids {missing[:5]}); "
            f"restore the unlabeled2017 images under {root} before writing a submission"
        )
    feats = caption_queries(
        clip,
        mapper,
        gallery,
        [q.reference for q in queries],
        [q.caption for q in queries],
        PROMPTS,
        (method,),
        "circo",
        prompts,
    )[method]
    if len(gallery.keys) < SUBMISSION_TOP_K:
        raise ValueError(
            f"CIRCO test: the gallery under {root} has {len(gallery.keys)} readable images; the server "
            f"needs the top {SUBMISSION_TOP_K} of the unlabeled2017 set for every query"
        )
    _, idx = topk_search(feats, gallery.feats, k=SUBMISSION_TOP_K)
    submission = {str(q.id): [int(gallery.keys[i]) for i in row.tolist()] for q, row in zip(queries, idx)}
    check_circo_submission(submission, [q.id for q in queries])
    path = out_dir / f"circo_test_{method}.json"
    write_submission(path, submission)
    return path
