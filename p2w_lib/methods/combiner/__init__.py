"""Combiner (Baldrati et al.; ABaldrati/CLIP4Cir): the supervised comparison of the Pic2Word paper.
Trained on labeled triplets of one source (Fashion-IQ's or CIRR's train split), it fuses the
reference image's and the caption's CLIP features into the query; the point of its rows is that
it is tailored to its training data, where the zero-shot methods need none.

One method per triplet source, `combiner_<source>`, each with its own model folder, sharing the
`combiner` settings and one stage (`for_source`). network.py: the architecture; triplets.py: the
caption forms; train.py: training on cached features, and loading ours or a CLIP4Cir release.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.methods.base import NetworkInputs, QueryInputs, QueryMethod, Training, TrainInputs
from p2w_lib.methods.combiner.config import CombinerConfig
from p2w_lib.methods.combiner.network import Combiner
from p2w_lib.methods.combiner.train import CHECKPOINT_NAME, CombinerResult, load_combiner, train_combiner
from p2w_lib.methods.combiner.triplets import query_caption

SOURCE_LABELS = {"fashion_iq": "Fashion-IQ", "cirr": "CIRR"}


@torch.no_grad()
def combiner_queries(clip: FrozenClip, net: Combiner, image_feats: torch.Tensor, texts, batch_size: int = 256):
    """Composed queries [Q, D] (normalised) from unnormalised image features [Q, D] and Q caption texts."""
    unique = sorted(set(texts))
    row = {t: i for i, t in enumerate(unique)}
    text_feats = torch.cat(
        [clip.encode_text(unique[i : i + batch_size]).float() for i in range(0, len(unique), batch_size)]
    )  # [U, D], unnormalised: the residual adds the raw features
    text_feats = text_feats[torch.tensor([row[t] for t in texts], device=text_feats.device)]  # [Q, D]
    was_training = net.training
    net.eval()
    try:
        out = [
            net(image_feats[i : i + batch_size].to(clip.device).float(), text_feats[i : i + batch_size]).cpu()
            for i in range(0, len(texts), batch_size)
        ]
    finally:
        net.train(was_training)
    return torch.cat(out)


def _compose(method: str):
    def compose(q: QueryInputs) -> torch.Tensor:
        # The benchmark's relative caption(s) as CLIP4Cir's evaluation forms them; a benchmark that gives
        # none (domain conversion) is composed with its text-only string, the words that say what changes.
        texts = [query_caption(c) for c in q.captions] if q.captions is not None else list(q.texts)
        return combiner_queries(q.clip, q.require_mapper(method), q.image_feats, texts, q.batch_size)

    return compose


def _training(source: str) -> Training:
    def train(x: TrainInputs) -> CombinerResult:
        cfg = replace(x.settings["combiner"], seed=x.seed)
        return train_combiner(x.clip, x.triplets(source), cfg, x.out_dir, x.cache_dir, restart_on_change=True)

    def network(x: NetworkInputs) -> Combiner:
        return load_combiner(x.released or x.model_dir / CHECKPOINT_NAME, x.clip)

    return Training(
        sections={"combiner": CombinerConfig},
        folder=f"combiner_{source}",
        network=network,
        train=train,
        checkpoint=CHECKPOINT_NAME,
        stage="train_combiner",
        notebook="03_train_combiner",
        switch=f"combiner.{source}",
        released=f"eval.combiner_checkpoint_{source}",
        cli_option=None,
        loss_plot=f"combiner_{source}_loss",
    )


def for_source(source: str, colour: str) -> QueryMethod:
    """The Combiner trained on `source`'s triplets, as a query method."""
    name = f"combiner_{source}"
    label = f"Combiner (trained on {SOURCE_LABELS[source]})"
    return QueryMethod(
        name, label, f"cmb_{source[:3]}", _compose(name), colour, training=_training(source), supervised=True
    )


FASHION_IQ = for_source("fashion_iq", "#6d4c41")
CIRR = for_source("cirr", "#a1887f")
