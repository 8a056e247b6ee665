"""Zero-shot accuracy of the demo CLIP on held-out demo images: does it know class, domain, colour?

Composition can only work on top of a CLIP that recognises what the prompts talk about, so the
demo prints this table before any Pic2Word number.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.features import embed_images
from p2w_lib.demo.world import CLASSES, DOMAINS, OBJECT_COLOURS, VISIBLE
from p2w_lib.methods.base import encode_unique_texts


def _accuracy(clip: FrozenClip, feats: torch.Tensor, candidates: list[list[str]], truth: list[int]) -> float:
    """Share of images whose true text (index `truth`) scores highest among its candidate texts."""
    texts = sorted({t for c in candidates for t in c})
    row = {t: i for i, t in enumerate(texts)}
    text_feats = encode_unique_texts(clip, texts)  # [T, D], each distinct text encoded once
    correct = 0
    for f, cands, t in zip(feats, candidates, truth):
        scores = text_feats[[row[c] for c in cands]] @ f  # [C]
        correct += int(scores.argmax() == t)
    return 100 * correct / len(truth)


def zero_shot_table(clip: FrozenClip, root: str | Path, cache_dir=None, per_domain: int = 60) -> dict[str, float]:
    """Class, domain and colour accuracy (%) on up to `per_domain` evaluation images per domain."""
    root = Path(root)
    attributes = json.loads((root / "imgnet" / "attributes.json").read_text())
    picked = []
    for domain in DOMAINS:
        items = [(p, a) for p, a in attributes.items() if a["domain"] == domain]
        picked += items[:: max(1, len(items) // per_domain)][:per_domain]
    feats = embed_images(clip, [str(root / p) for p, _ in picked], cache_dir=cache_dir, desc="sanity images").tensor(
        normalize=True
    )
    attrs = [a for _, a in picked]
    table = {
        "class": _accuracy(
            clip,
            feats,
            [[f"a {a['domain']} of a {c}" for c in CLASSES] for a in attrs],
            [CLASSES.index(a["cls"]) for a in attrs],
        ),
        "domain": _accuracy(
            clip,
            feats,
            [[f"a {d} of a {a['cls']}" for d in DOMAINS] for a in attrs],
            [DOMAINS.index(a["domain"]) for a in attrs],
        ),
    }
    coloured = [i for i, a in enumerate(attrs) if "colour" in VISIBLE[a["domain"]]]
    table["colour"] = _accuracy(
        clip,
        feats[coloured],
        [[f"a {attrs[i]['domain']} of a {c} {attrs[i]['cls']}" for c in OBJECT_COLOURS] for i in coloured],
        [OBJECT_COLOURS.index(attrs[i]["colour"]) for i in coloured],
    )
    for domain in DOMAINS:
        rows = [i for i, a in enumerate(attrs) if a["domain"] == domain]
        table[f"class ({domain})"] = _accuracy(
            clip,
            feats[rows],
            [[f"a {domain} of a {c}" for c in CLASSES]] * len(rows),
            [CLASSES.index(attrs[i]["cls"]) for i in rows],
        )
    return table
