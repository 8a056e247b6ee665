"""Writes the demo world to disk in the real datasets' formats.

    <root>/cc3m/train.tsv + cc3m/images/          CLIP pretraining and mapper training (CC3M's list format)
    <root>/imgnet/...                             domain conversion (Pic2Word's ImageNet-R lists and layout)
    <root>/fashion-iq/{captions,image_splits,images}/   Fashion-IQ's files
    <root>/cirr/{captions,image_splits,dev,train}/       CIRR's files (p2w_lib.demo.cirr_world)
    <root>/oracle/*.json, <root>/world.json       demo-only side information (oracle texts, attributes)

Specs are drawn in one process from one seeded RNG; rendering (a pure function of the spec) runs
in parallel, so the files are byte-identical for a given seed whatever the number of workers.
Evaluation images are drawn separately from training images and live in other folders.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from p2w_lib.core.config import to_dict
from p2w_lib.core.files import atomic_write_json
from p2w_lib.data.cc3m import write_image_caption_list
from p2w_lib.data.fashion_iq import CATEGORIES
from p2w_lib.data.imagenet_r import QUERY_LIST, TARGET_LIST, write_label_list
from p2w_lib.demo.captions import (
    garment_caption,
    object_caption,
    oracle_garment_text,
    oracle_object_text,
    relative_captions,
)
from p2w_lib.demo.cirr_world import cirr_split
from p2w_lib.demo.config import DemoWorldConfig
from p2w_lib.demo.render import render_garment, render_object
from p2w_lib.demo.world import (
    CLASSES,
    COLOURS,
    DOMAINS,
    LENGTHS,
    LOGO_COLOURS,
    NECKLINES,
    PATTERNS,
    PHOTO,
    PHOTO_DOMAIN_INDEX,
    RENDITIONS,
    SLEEVES,
    GarmentSpec,
    ObjectSpec,
    garment_space,
    sample_garment,
    sample_object,
)


@dataclass(frozen=True)
class RenderJob:
    spec: ObjectSpec | GarmentSpec
    path: str


def _render(job: RenderJob, size: int) -> None:
    image = render_object(job.spec, size) if isinstance(job.spec, ObjectSpec) else render_garment(job.spec, size)
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    image.save(job.path, format="PNG", compress_level=1)  # fast; still lossless and deterministic


def _render_chunk(args) -> int:
    jobs, size = args
    for job in jobs:
        _render(job, size)
    return len(jobs)


def render_all(jobs: list[RenderJob], size: int, workers: int) -> None:
    chunks = [(jobs[i : i + 256], size) for i in range(0, len(jobs), 256)]
    bar = tqdm(total=len(jobs), desc="rendering demo world", unit="img")
    if workers <= 1:
        for chunk in chunks:
            bar.update(_render_chunk(chunk))
    else:
        # fork: workers inherit the imported modules instead of re-importing torch (seconds each)
        with get_context("fork").Pool(workers) as pool:
            for n in pool.imap_unordered(_render_chunk, chunks):
                bar.update(n)
    bar.close()


def pretraining_split(
    rng: random.Random, cfg: DemoWorldConfig, root: Path
) -> tuple[list[RenderJob], list[tuple[str, str]]]:
    """CC3M-like image-caption pairs over all classes x domains, plus garments."""
    per_domain = {d: cfg.pretrain_photos_per_class if d == PHOTO else cfg.pretrain_per_class_domain for d in DOMAINS}
    specs = [sample_object(rng, c, d) for c in CLASSES for d in DOMAINS for _ in range(per_domain[d])]
    specs += [sample_garment(rng, g) for g in CATEGORIES for _ in range(cfg.pretrain_garments_per_category)]
    rng.shuffle(specs)
    jobs, pairs = [], []
    for n, spec in enumerate(specs):
        rel = f"images/{n:06d}.png"
        jobs.append(RenderJob(spec, str(root / "cc3m" / rel)))
        caption = (
            object_caption(spec, rng, cfg.caption_drop, cfg.colour_caption_drop)
            if isinstance(spec, ObjectSpec)
            else garment_caption(spec, rng, cfg.garment_caption_drop)
        )
        pairs.append((rel, caption))
    return jobs, pairs


def domain_conversion_split(rng: random.Random, cfg: DemoWorldConfig, root: Path):
    """Photo queries and renditions, with Pic2Word's list files and label encoding."""
    jobs, queries, targets, attributes = [], [], [], {}
    for ci, cls in enumerate(CLASSES):
        for n in range(cfg.eval_queries_per_class):
            spec, rel = sample_object(rng, cls, PHOTO), f"imgnet/real/{cls}/{n:04d}.png"
            jobs.append(RenderJob(spec, str(root / rel)))
            queries.append((rel, ci))
            targets.append((rel, 1000 * PHOTO_DOMAIN_INDEX + ci))  # the query photos are distractors
            attributes[rel] = spec.to_dict()
        for di, domain in enumerate(RENDITIONS):
            for n in range(cfg.eval_renditions_per_class_domain):
                spec, rel = sample_object(rng, cls, domain), f"imgnet/imagenet-r/{cls}/{domain}_{n}.png"
                jobs.append(RenderJob(spec, str(root / rel)))
                targets.append((rel, 1000 * di + ci))
                attributes[rel] = spec.to_dict()
    oracle = {d: [oracle_object_text(CLASSES[label % 1000], d) for _, label in queries] for d in RENDITIONS}
    return jobs, queries, targets, attributes, oracle


CHANGEABLE = {
    "colour": tuple(COLOURS),
    "pattern": PATTERNS,
    "sleeve": SLEEVES,
    "neckline": NECKLINES,
    "logo": ("",) + LOGO_COLOURS,
}


def _changed(rng: random.Random, attrs: dict, category: str) -> dict:
    """A copy of `attrs` with 1-3 attributes set to other values (a valid garment)."""
    keys = list(CHANGEABLE) + (["length"] if category == "dress" else [])
    while True:
        target = dict(attrs)
        for key in rng.sample(keys, rng.choice([1, 1, 2, 2, 3])):
            values = LENGTHS if key == "length" else CHANGEABLE[key]
            target[key] = rng.choice([v for v in values if v != attrs[key]])
        if target["logo"] != target["colour"]:
            return target


def fashion_split(rng: random.Random, category: str, n_triplets: int, n_gallery: int, prefix: str, root: Path):
    """A gallery of `n_gallery` garments, each a different attribute combination (so a target is the
    only image that matches its description), and `n_triplets` candidate -> target pairs drawn from
    it, as in Fashion-IQ, where an image can be the candidate or target of several triplets."""
    space = garment_space(category)
    if n_gallery > len(space):
        raise ValueError(
            f"fashion-iq {category}: a gallery of {n_gallery} distinct garments, but only {len(space)} exist; "
            "lower world.fiq_val_gallery"
        )
    picked = rng.sample(space, n_gallery)
    row = {tuple(sorted(attrs.items())): i for i, attrs in enumerate(picked)}
    specs = [GarmentSpec(category=category, seed=rng.getrandbits(31), **attrs) for attrs in picked]
    ids = [f"{prefix}{i:05d}" for i in range(n_gallery)]
    jobs = [RenderJob(spec, str(root / "fashion-iq" / "images" / f"{i}.png")) for spec, i in zip(specs, ids)]
    triplets, oracle = [], []
    for _ in range(
        1000 * n_triplets + 1000
    ):  # a drawn target must be in the gallery (n_gallery / |space| of draws are)
        if len(triplets) == n_triplets:
            break
        c = rng.randrange(n_gallery)
        t = row.get(tuple(sorted(_changed(rng, dict(picked[c]), category).items())))
        if t is None:
            continue
        triplets.append({"candidate": ids[c], "target": ids[t], "captions": relative_captions(specs[c], specs[t], rng)})
        oracle.append(oracle_garment_text(specs[t]))
    if len(triplets) < n_triplets:
        raise ValueError(
            f"fashion-iq {category}: drew only {len(triplets)} of {n_triplets} triplets; raise world.fiq_val_gallery"
        )
    return jobs, triplets, ids, oracle


def build_world(root: str | Path, cfg: DemoWorldConfig) -> dict:
    """Render and write the whole demo world under `root`; returns a summary of counts."""
    root = Path(root)
    rng = random.Random(cfg.seed)
    jobs, pairs = pretraining_split(rng, cfg, root)
    dc_jobs, queries, targets, attributes, dc_oracle = domain_conversion_split(rng, cfg, root)
    jobs += dc_jobs
    fiq_oracle, counts = {}, {"pretrain": len(pairs), "dc_queries": len(queries), "dc_gallery": len(targets)}
    # The labeled training triplets (Combiner's) come from a stream of their own, so their number
    # changes no evaluation image; their images are other renders (ids *T*), never an evaluation one.
    train_rng = random.Random(f"{cfg.seed}/fashion-iq-train")
    for split, r, n, gallery, tag in (
        ("val", rng, cfg.fiq_val_triplets, cfg.fiq_val_gallery, "V"),
        ("train", train_rng, cfg.fiq_train_triplets, cfg.fiq_train_gallery, "T"),
    ):
        for category in CATEGORIES:
            f_jobs, triplets, ids, oracle = fashion_split(r, category, n, gallery, f"{category[0].upper()}{tag}", root)
            jobs += f_jobs
            atomic_write_json(root / "fashion-iq" / "captions" / f"cap.{category}.{split}.json", triplets)
            atomic_write_json(root / "fashion-iq" / "image_splits" / f"split.{category}.{split}.json", ids)
            counts[f"fiq_{category}_{split}_gallery"] = len(ids)
            if split == "val":
                fiq_oracle[category] = oracle
    for split, n_sets in (("val", cfg.cirr_val_sets), ("train", cfg.cirr_train_sets)):
        # Streams of their own: the CIRR analogue changes no image or file of the other benchmarks.
        images, entries = cirr_split(random.Random(f"{cfg.seed}/cirr-{split}"), split, n_sets, root)
        jobs += [RenderJob(spec, str(root / "cirr" / rel)) for spec, rel in images.values()]
        atomic_write_json(root / "cirr" / "captions" / f"cap.rc2.{split}.json", entries)
        atomic_write_json(
            root / "cirr" / "image_splits" / f"split.rc2.{split}.json", {n: r for n, (_, r) in images.items()}
        )
        counts[f"cirr_{split}_queries"], counts[f"cirr_{split}_gallery"] = len(entries), len(images)
    render_all(jobs, cfg.image_size, cfg.workers)
    write_image_caption_list(root / "cc3m" / "train.tsv", pairs)
    write_label_list(root / QUERY_LIST, queries)
    write_label_list(root / TARGET_LIST, targets)
    atomic_write_json(root / "oracle" / "domain_conversion.json", dc_oracle)
    atomic_write_json(root / "oracle" / "fashion_iq.json", fiq_oracle)
    atomic_write_json(root / "imgnet" / "attributes.json", attributes)
    settings = {k: v for k, v in to_dict(cfg).items() if k != "workers"}  # workers change no byte of output
    atomic_write_json(
        root / "world.json",
        {
            "config": settings,
            "classes": list(CLASSES),
            "domains": list(DOMAINS),
            "renditions": list(RENDITIONS),
            "counts": counts,
        },
    )
    return counts
