"""Pic2Word (Saito et al., CVPR 2023): a mapping network, trained on unlabeled images, turns the
CLIP image embedding into the pseudo word token `*` of prompts such as `a photo of * , is red`.

network.py: the network (the original's IM2TEXT); config.py: its settings; train.py: the
contrastive training on cached image embeddings; checkpoint.py: our format and the official one.
"""

from __future__ import annotations

from dataclasses import replace

from p2w_lib.methods.base import (
    NetworkInputs,
    QueryMethod,
    Training,
    TrainInputs,
    pseudo_token,
)
from p2w_lib.methods.pic2word.checkpoint import load_mapper
from p2w_lib.methods.pic2word.config import MapperConfig, TrainConfig
from p2w_lib.methods.pic2word.train import CHECKPOINT_NAME, TrainResult, train_mapper


def _train(x: TrainInputs) -> TrainResult:
    # DVC re-runs this stage when settings or data change; the model folder persists (a killed run
    # resumes), so a checkpoint of other settings or data is replaced rather than refused.
    return train_mapper(
        x.clip,
        x.images(),
        replace(x.settings["train"], seed=x.seed),
        x.settings["mapper"],
        x.out_dir,
        cache_dir=x.cache_dir,
        restart_on_change=True,
    )


def _network(x: NetworkInputs):
    return load_mapper(x.released or x.model_dir / CHECKPOINT_NAME, x.clip)


METHOD = QueryMethod(
    "pic2word",
    "Pic2Word",
    "p2w",
    pseudo_token("pic2word"),
    "#e53935",
    training=Training(
        sections={"mapper": MapperConfig, "train": TrainConfig},
        folder="mapper",
        network=_network,
        train=_train,
        checkpoint=CHECKPOINT_NAME,
        stage="train_mapper",
        notebook="03_train_mapper",
        released="eval.mapper_checkpoint",
        cli_option="--mapper",
        distributed=True,
        loss_plot="mapper_loss",
    ),
)
