"""Picking and ranking example queries for the qualitative figures."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.features import embed_images
from p2w_lib.data.cirr import read_image_split
from p2w_lib.data.cirr import read_queries as read_cirr_queries
from p2w_lib.data.fashion_iq import image_index, read_split, read_triplets
from p2w_lib.data.imagenet_r import QUERY_LIST, TARGET_LIST, read_label_list
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import compose_queries
from p2w_lib.protocols.cirr import PROMPTS as CIRR_PROMPTS
from p2w_lib.protocols.common import caption_queries, embed_gallery
from p2w_lib.protocols.domain_conversion import PROMPT as DOMAIN_PROMPT
from p2w_lib.protocols.fashion_iq import query_texts
from p2w_lib.retrieval.topk import topk_search


def _ranked(clip, mapper, ref_feats, prompts, texts, gallery, methods, k, benchmark):
    queries = compose_queries(clip, mapper, ref_feats, prompts, text_only=texts, methods=methods, benchmark=benchmark)
    return {m: topk_search(q, gallery, k=k)[1] for m, q in queries.items()}  # method -> [Q, k]


def domain_conversion_examples(
    clip: FrozenClip,
    mapper: Mapper,
    root: str | Path,
    domains: Sequence[str],
    n: int = 4,
    seed: int = 0,
    k: int = 5,
    cache_dir=None,
    methods=("pic2word", "image_text"),
    max_bad_fraction: float = 0.01,
) -> list[dict]:
    """`n` queries (distinct classes, domains in turn) with each method's top-k and hit flags."""
    root = Path(root)
    queries, targets = read_label_list(root / QUERY_LIST), read_label_list(root / TARGET_LIST)
    kept = embed_gallery(
        clip,
        list(range(len(targets))),
        [str(root / p) for p, _ in targets],
        cache_dir,
        max_bad_fraction,
        "embedding gallery",
    )  # unreadable images left out
    gallery, targets = kept.feats, [targets[i] for i in kept.keys]
    by_class = {}
    for i, (_, label) in enumerate(queries):
        by_class.setdefault(label, []).append(i)
    rng = random.Random(seed)
    picked = [rng.choice(by_class[c]) for c in rng.sample(sorted(by_class), min(n, len(by_class)))]
    refs = embed_images(
        clip, [str(root / queries[i][0]) for i in picked], cache_dir=cache_dir, max_bad_fraction=max_bad_fraction
    ).tensor()
    examples = []
    for j, i in enumerate(picked):
        p = j % len(domains)
        prompt = DOMAIN_PROMPT.format(domain=domains[p])
        ranked = _ranked(clip, mapper, refs[j : j + 1], [prompt], None, gallery, methods, k, "domain_conversion")
        wanted = queries[i][1] + 1000 * p
        examples.append(
            {
                "query": str(root / queries[i][0]),
                "text": prompt,
                "results": {
                    m: [(str(root / targets[g][0]), targets[g][1] == wanted) for g in idx[0].tolist()]
                    for m, idx in ranked.items()
                },
            }
        )
    return examples


def fashion_examples(
    clip: FrozenClip,
    mapper: Mapper,
    root: str | Path,
    category: str,
    n: int = 3,
    seed: int = 0,
    k: int = 5,
    cache_dir=None,
    methods=("pic2word", "image_text"),
    max_bad_fraction: float = 0.05,
) -> list[dict]:
    root = Path(root)
    files = image_index(root / "images")
    ids = [i for i in read_split(root, category) if i in files]
    kept = embed_gallery(
        clip, ids, [files[i] for i in ids], cache_dir, max_bad_fraction, f"embedding {category} gallery"
    )
    gallery, ids = kept.feats, kept.keys  # unreadable images left out
    in_gallery = set(ids)
    triplets = [t for t in read_triplets(root, category) if t.candidate in files and t.target in in_gallery]
    picked = random.Random(seed).sample(triplets, min(n, len(triplets)))
    refs = embed_images(
        clip, [files[t.candidate] for t in picked], cache_dir=cache_dir, max_bad_fraction=max_bad_fraction
    ).tensor()
    prompts, texts = (list(x) for x in zip(*[query_texts(t) for t in picked]))
    ranked = _ranked(clip, mapper, refs, prompts, texts, gallery, methods, k, "fashion_iq")
    return [
        {
            "query": files[t.candidate],
            "text": prompts[j],
            "target": files[t.target],
            "results": {m: [(files[ids[g]], ids[g] == t.target) for g in idx[j].tolist()] for m, idx in ranked.items()},
        }
        for j, t in enumerate(picked)
    ]


def cirr_examples(
    clip: FrozenClip,
    mapper: Mapper,
    root: str | Path,
    n: int = 4,
    seed: int = 0,
    k: int = 5,
    cache_dir=None,
    methods=("pic2word", "image_text"),
    max_bad_fraction: float = 0.01,
) -> list[dict]:
    """`n` CIRR val queries ranked as the CIRR protocol ranks them: the whole val gallery with the
    query's own reference image removed, Pic2Word's prompt `a photo of * , {caption}`."""
    root = Path(root)
    files = read_image_split(root, "val")
    names = sorted(files)
    gallery = embed_gallery(
        clip, names, [str(files[m]) for m in names], cache_dir, max_bad_fraction, "embedding CIRR val images"
    )
    rows = gallery.rows()
    usable = [q for q in read_cirr_queries(root, "val") if q.reference in rows and q.target in rows]
    picked = random.Random(seed).sample(usable, min(n, len(usable)))
    queries = caption_queries(
        clip, mapper, gallery, [q.reference for q in picked], [q.caption for q in picked], CIRR_PROMPTS, methods, "cirr"
    )  # method -> [n, D]
    exclude = torch.tensor([rows[q.reference] for q in picked])  # [n]
    ranked = {m: topk_search(feats, gallery.feats, k=k, exclude=exclude)[1] for m, feats in queries.items()}  # [n, k]
    return [
        {
            "query": str(files[q.reference]),
            "text": CIRR_PROMPTS["pic2word"].format(caption=q.caption),
            "target": str(files[q.target]),
            "results": {
                m: [(str(files[gallery.keys[g]]), gallery.keys[g] == q.target) for g in idx[j].tolist()]
                for m, idx in ranked.items()
            },
        }
        for j, q in enumerate(picked)
    ]
