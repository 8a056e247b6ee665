"""The small tables and examples the notebooks show beside the stages' results."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from p2w_lib.app import models
from p2w_lib.app.qualitative import cirr_examples, domain_conversion_examples, fashion_examples
from p2w_lib.app.training_data import training_captions, training_triplets
from p2w_lib.data.fashion_iq import read_triplets
from p2w_lib.methods.combiner.triplets import training_forms
from p2w_lib.methods.lincir.keywords import mask_keywords
from p2w_lib.methods.searle.concepts import concept_examples as concept_rows
from p2w_lib.methods.searle_oti import own_image_first
from p2w_lib.training.checkpoint import read_checkpoint


def concept_examples(p, n: int = 8) -> pd.DataFrame:
    """A table of `n` of SEARLE's concepts (the list's frequent content words), how many captions use
    each, and one of them as a phrase with the concept masked."""
    rows = concept_rows(training_captions(p), p.searle.min_concept_count, n)
    return pd.DataFrame(rows, columns=["concept", "captions using it", "a phrase", "masked for OTI"])


def masked_caption_examples(p, n: int = 8) -> pd.DataFrame:
    """A table of `n` distinct training captions and LinCIR's masked form of each."""
    captions = sorted(set(training_captions(p)))
    picked = random.Random(0).sample(captions, min(n, len(captions)))
    return pd.DataFrame({"caption": picked, "masked for training": [mask_keywords(c) for c in picked]})


def triplet_examples(p, source: str, n: int = 5) -> pd.DataFrame:
    """`n` of a source's labeled training triplets (image ids) and the caption forms Combiner draws from."""
    triplets = training_triplets(p, source)
    picked = random.Random(0).sample(range(len(triplets)), min(n, len(triplets)))
    return pd.DataFrame(
        {
            "reference": [Path(triplets.references[i]).stem for i in picked],
            "target": [Path(triplets.targets[i]).stem for i in picked],
            "caption forms (one drawn per step)": [" | ".join(training_forms(triplets.captions[i])) for i in picked],
        }
    )


def oti_store_table(p) -> pd.DataFrame:
    """Per seed, what the searle_oti stage stored: images, batches, and the % of tokens whose
    `a photo of *` retrieves their own image first among the stored images (searle_oti.own_image_first)."""
    rows = []
    for seed in p.seeds:
        saved = read_checkpoint(p.oti_store_path(seed), "SEARLE-OTI token store", "run invert_query_images first")
        n = len(saved["tokens"])
        own = own_image_first(models.clip_for(p, seed), saved["images"], saved["tokens"])
        rows.append(
            {
                "seed": seed,
                "query images": n,
                "OTI batches": saved["batches"],
                "own image first (%)": round(own, 1),
                "chance (%)": round(100 / max(n, 1), 2),
            }
        )
    return pd.DataFrame(rows).set_index("seed")


def qualitative_examples(p, seed: int, n: int = 4) -> dict[str, list[dict]]:
    """Example queries with the top-5 of Pic2Word and image+text, per benchmark ([] where it is off)."""
    clip, mapper = models.clip_and_mapper(p, seed)
    on = {task: p.source.switched_on(p, task) for task in ("domain_conversion", "fashion_iq", "cirr")}
    return {
        "domain_conversion": domain_conversion_examples(
            clip,
            mapper,
            p.world_dir,
            p.source.rendition_domains,
            n=n,
            seed=seed,
            cache_dir=p.cache_dir,
            max_bad_fraction=p.eval.max_bad_fraction,
        )
        if on["domain_conversion"]
        else [],
        "fashion_iq": [
            ex
            for c in ("dress", "shirt", "toptee")
            for ex in fashion_examples(
                clip, mapper, p.world_dir / "fashion-iq", c, n=1, seed=seed, cache_dir=p.cache_dir
            )
        ]
        if on["fashion_iq"]
        else [],
        "cirr": cirr_examples(
            clip,
            mapper,
            p.world_dir / "cirr",
            n=n,
            seed=seed,
            cache_dir=p.cache_dir,
            max_bad_fraction=p.eval.max_bad_fraction,
        )
        if on["cirr"]
        else [],
    }


def default_query(p, image: str | None, gallery: str | None) -> tuple[str, str]:
    """The notebook's default query: the first Fashion-IQ dress candidate, searched in its image folder."""
    fiq = p.world_dir / "fashion-iq"
    if image is None:
        image = str(fiq / "images" / f"{read_triplets(fiq, 'dress')[0].candidate}.png")
    return image, gallery or str(fiq / "images")
