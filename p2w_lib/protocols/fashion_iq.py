"""Fashion-IQ protocol (and its demo analogue), as in the official Pic2Word evaluation.

Per category the gallery is `split.{category}.val.json`; each triplet's query is its candidate
image composed with `a photo of * , {c2} and {c1}` (second caption first, nothing stripped);
metric = hit-rate recall@K with the one labelled target. Triplets whose candidate or target
image is missing or unreadable are not evaluable: they are counted and reported, never dropped
silently. The text-only and image+text baselines encode that same prompt as plain text, the
literal `*` included, exactly as the official evaluation does (its `target_caption`).

SEARLE and LinCIR report their numbers under their own variant: `a photo of * that {c1} and {c2}`
with `.?, ` stripped from each caption's ends, and each method's features averaged over both
caption orders (then re-normalised). `prompts="own"` (the default) scores each method under its own
paper's protocol (methods/base.py, QueryMethod.protocol) and also records the methods whose own
protocol is not Pic2Word's under Pic2Word's prompts (`under_pic2word_prompts`), the one-prompt-for-all
comparison; "pic2word" or "searle" scores every method under that one family.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.data.fashion_iq import CATEGORIES, image_index, read_split, read_triplets
from p2w_lib.data.images import BadImagesError
from p2w_lib.methods.base import encode_unique_texts
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import TokenMappers, compose_queries
from p2w_lib.protocols.common import (
    compose_by_protocol,
    embed_gallery,
    embed_queries,
    log_counts,
    own_protocols,
    rank_and_score,
    results_document,
)
from p2w_lib.protocols.comparisons import compare_to_baseline, per_query_hits
from p2w_lib.retrieval.metrics import paired_bootstrap, relevance_from_sets

log = logging.getLogger(__name__)

PROMPT = "a photo of * , {c2} and {c1}"
SEARLE_PROMPT = "a photo of * that {first} and {second}"


def query_texts(triplet) -> tuple[str, str]:
    """(composed prompt, baseline text) of a triplet: second caption first, and the baselines encode
    the prompt itself, `*` and all, as the official code."""
    c1, c2 = triplet.captions
    prompt = PROMPT.format(c1=c1, c2=c2)
    return prompt, prompt


def searle_query_texts(triplet) -> list[tuple[str, str]]:
    """(prompt, caption-only text) for both caption orders, SEARLE's variant."""
    c1, c2 = (c.strip(".?, ") for c in triplet.captions)
    return [(SEARLE_PROMPT.format(first=a, second=b), f"{a} and {b}") for a, b in ((c1, c2), (c2, c1))]


def _family_queries(clip, mapper, ref_feats, triplets, family: str, methods: list[str]) -> dict:
    """The queries of `methods` under one prompt family's Fashion-IQ protocol."""
    relative = [tuple(t.captions) for t in triplets]  # for a method that reads the captions themselves
    if family == "pic2word":
        prompts, texts = (list(x) for x in zip(*[query_texts(t) for t in triplets]))
        return compose_queries(
            clip,
            mapper,
            ref_feats,
            prompts,
            text_only=texts,
            methods=methods,
            benchmark="fashion_iq",
            captions=relative,
        )
    per_order = []  # SEARLE's and LinCIR's: both caption orders, features averaged
    for order in (0, 1):
        prompts, texts = (list(x) for x in zip(*[searle_query_texts(t)[order] for t in triplets]))
        per_order.append(
            compose_queries(
                clip,
                mapper,
                ref_feats,
                prompts,
                text_only=texts,
                methods=methods,
                benchmark="fashion_iq",
                captions=relative,
            )
        )
    return {m: F.normalize(per_order[0][m] + per_order[1][m], dim=-1) for m in per_order[0]}


def _queries(clip, mapper, ref_feats, triplets, prompts: str, methods=None) -> dict:
    """Every method's queries, each under its own paper's protocol (`prompts="own"`) or all under one."""
    return compose_by_protocol(
        mapper,
        methods,
        prompts,
        lambda family, group: _family_queries(clip, mapper, ref_feats, triplets, family, group),
    )


def evaluate_category(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers,
    root: Path,
    category: str,
    ks: Sequence[int],
    cache_dir,
    oracle_texts: list[str] | None,
    max_bad_fraction: float,
    prompts: str = "own",
) -> tuple[dict, dict, dict, dict]:
    """Scores per method for one category, the evaluable/skipped counts, each method's relevance
    matrix, and (prompts="own") the scores under Pic2Word's prompts of the methods whose own differ."""
    triplets = read_triplets(root, category, "val")
    ids = read_split(root, category, "val")
    files = image_index(root / "images")
    # Every gallery id is embedded, the missing ones included: a missing file is a bad image that
    # counts against max_bad_fraction (a gallery without a third of its images makes recall rise).
    paths = [files.get(i, str(root / "images" / f"{i}.png")) for i in ids]
    gallery = embed_gallery(clip, ids, paths, cache_dir, max_bad_fraction, f"embedding {category} gallery")
    row = {gid: r for r, gid in enumerate(gallery.keys)}
    usable = [i for i, t in enumerate(triplets) if t.candidate in files and t.target in row]  # triplet indices
    ref_feats, ok = embed_queries(
        clip, [files[triplets[i].candidate] for i in usable], cache_dir, 1.0, f"embedding {category} queries"
    )
    kept = [i for i, keep in zip(usable, ok.tolist()) if keep]
    usable_ok = [triplets[i] for i in kept]
    ref_feats = ref_feats[ok]
    counts = {
        "evaluable": len(usable_ok),
        "skipped": len(triplets) - len(usable_ok),
        "gallery": len(gallery.keys),
        "gallery_missing": len(ids) - len(gallery.keys),
    }
    log_counts(f"fashion-iq {category}", counts["evaluable"], counts["skipped"], what="triplets")
    if not usable_ok:
        raise ValueError(
            f"fashion-iq {category}: no evaluable triplet under {root} (all candidate/target images missing)"
        )
    if counts["skipped"] > max_bad_fraction * len(triplets):
        raise BadImagesError(
            f"fashion-iq {category}: {counts['skipped']} of {len(triplets)} triplets have a missing or "
            f"unreadable image under {root / 'images'}, more than the allowed {max_bad_fraction:.1%}. "
            "Restore the images, or raise eval.max_bad_fraction if losing them is acceptable."
        )
    queries = _queries(clip, mapper, ref_feats, usable_ok, prompts)
    if oracle_texts is not None:  # one text per triplet of the caption file, in its order
        queries["oracle_text"] = encode_unique_texts(clip, [oracle_texts[i] for i in kept])
    targets = [{row[t.target]} for t in usable_ok]

    def relevance(idx):
        return relevance_from_sets(idx, targets)

    rel = {}
    scores = rank_and_score(queries, gallery.feats, relevance, "hit_rate", ks, per_query=rel)
    others = list(own_protocols(queries)) if prompts == "own" else []
    same_prompt = (
        rank_and_score(
            _queries(clip, mapper, ref_feats, usable_ok, "pic2word", others), gallery.feats, relevance, "hit_rate", ks
        )
        if others
        else {}
    )
    return scores, counts, rel, same_prompt


def evaluate_fashion_iq(
    clip: FrozenClip,
    mapper: Mapper | TokenMappers,
    root: str | Path,
    categories: Sequence[str] = CATEGORIES,
    ks: Sequence[int] = (10, 50),
    cache_dir: str | Path | None = None,
    oracle_texts: dict[str, list[str]] | None = None,
    max_bad_fraction: float = 0.05,
    profile: str = "paper",
    seed: int = 0,
    prompts: str = "own",
) -> dict:
    """Hit-rate recall per category and averaged, for every query method `mapper` allows (+ optional
    oracle); prompts: "own" (each method under its own paper's protocol), "pic2word" or "searle"."""
    root = Path(root)
    per_category, counts, rel, same_prompt = {}, {}, {}, {}
    for category in categories:
        oracle = oracle_texts[category] if oracle_texts is not None else None
        per_category[category], counts[category], rel[category], same_prompt[category] = evaluate_category(
            clip, mapper, root, category, ks, cache_dir, oracle, max_bad_fraction, prompts
        )
    methods = next(iter(per_category.values()))
    hits = {  # category -> method -> {k: per-query hit [Q]}
        c: {m: {k: per_query_hits(r, k) for k in ks if r.shape[1] >= k} for m, r in by_method.items()}
        for c, by_method in rel.items()
    }
    extra = {}
    if any(same_prompt.values()):  # the one-prompt-for-all comparison: these methods under Pic2Word's prompts
        extra["under_pic2word_prompts"] = results_document(profile, seed, "hit_rate", same_prompt, "per_category")[
            "methods"
        ]
    return results_document(
        profile,
        seed,
        "hit_rate",
        per_category,
        "per_category",
        counts=counts,
        prompts=prompts,
        protocols=own_protocols(methods) if prompts == "own" else {m: prompts for m in methods},
        **extra,
        paired_difference=paired_differences(rel, ks, seed),
        comparisons=compare_to_baseline(hits, ks, seed),
        comparisons_to_pic2word=compare_to_baseline(hits, ks, seed, baseline="pic2word"),
    )


COMPARED = ("pic2word", "image_text")  # the paper's claim: composing through the pseudo token beats adding features


def paired_differences(rel: dict[str, dict[str, torch.Tensor]], ks: Sequence[int], seed: int = 0) -> dict:
    """Pic2Word minus image + text in average hit-rate recall@K, with a 95% paired bootstrap interval
    over queries (resampled within each category): how sure the margin is, not only how large.
    Empty when either method was not scored (called without Pic2Word's mapper)."""
    a, b = COMPARED
    if not all(m in r for r in rel.values() for m in COMPARED):
        return {}
    out = {}
    for k in ks:
        if any(r[a].shape[1] < k for r in rel.values()):
            continue  # a toy gallery smaller than K: no score, so no difference
        hits = {m: [r[m][:, :k].any(dim=1).double() * 100 for r in rel.values()] for m in COMPARED}  # per category [Q]
        out[f"R@{k}"] = paired_bootstrap(hits[a], hits[b], seed=seed)
    return {"methods": list(COMPARED), **out}
