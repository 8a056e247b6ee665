"""SEARLE (Baldrati et al., ICCV 2023): optimisation-based textual inversion (OTI) of a subset of the
training images, then phi distilled from the tokens with a contrastive loss and a phrase regulariser.

concepts.py: the concepts and phrases (an offline substitute for the original's GPT phrases);
oti.py: the inversion; config.py: its settings; train.py: OTI, then phi.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from p2w_lib.clip.features import embed_images
from p2w_lib.methods.base import (
    NetworkInputs,
    QueryMethod,
    Training,
    TrainInputs,
    pseudo_token,
)
from p2w_lib.methods.phi_runs import CHECKPOINT_NAME, load_phi
from p2w_lib.methods.searle.concepts import ConceptPhrases, concept_phrases
from p2w_lib.methods.searle.config import SEARLEConfig
from p2w_lib.methods.searle.train import SEARLEResult, train_searle


def oti_subset(images: Sequence[str], n: int | None, subset_seed: int = 0) -> list[str]:
    """SEARLE's training images: a random subset of `n` of the list (the same for every seed; drawn
    with `subset_seed`, which the pipeline keeps at 0), in list order; all of them when n is None."""
    if n is None or n >= len(images):
        return list(images)
    keep = set(random.Random(subset_seed).sample(range(len(images)), n))
    return [path for i, path in enumerate(images) if i in keep]


def phrases_for(clip, captions: Sequence[str], cfg: SEARLEConfig) -> ConceptPhrases:
    """SEARLE's concepts and phrases, from the training captions (concepts.py), for `clip`."""
    return concept_phrases(clip, captions, cfg.min_concept_count, cfg.phrases_per_concept)


def _train(x: TrainInputs) -> SEARLEResult:
    cfg = replace(x.settings["searle"], seed=x.seed)
    emb = embed_images(
        x.clip,
        oti_subset(x.images(), cfg.oti_images),
        cache_dir=x.cache_dir,
        max_bad_fraction=cfg.max_bad_fraction,
        desc="embedding SEARLE's images",
    )
    valid = emb.valid.nonzero()[0]  # unreadable images were counted and logged by embed_images
    return train_searle(
        x.clip,
        emb.tensor()[valid],
        [emb.paths[i] for i in valid],
        phrases_for(x.clip, x.captions(), cfg),
        cfg,
        x.out_dir,
        restart_on_change=True,
    )


def _network(x: NetworkInputs):
    return load_phi(x.released or x.model_dir / CHECKPOINT_NAME, x.clip)


METHOD = QueryMethod(
    "searle",
    "SEARLE",
    "srl",
    pseudo_token("searle"),
    "#fb8c00",
    training=Training(
        sections={"searle": SEARLEConfig},
        folder="searle",
        network=_network,
        train=_train,
        checkpoint=CHECKPOINT_NAME,
        stage="train_searle",
        notebook="03_train_searle",
        switch="searle.enabled",
        released="eval.searle_checkpoint",
        cli_option="--phi",
        loss_plot="searle_loss",
    ),
    protocol="searle",  # its published numbers are under SEARLE's prompts (protocols/common.py)
)
