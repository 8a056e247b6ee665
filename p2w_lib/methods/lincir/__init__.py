"""LinCIR (Gu et al., CVPR 2024): phi learns the pseudo token from text alone. A caption's keywords
are masked, phi maps the caption's (noised) embedding to a token, and the caption with the token in
place of its keywords must embed as the original caption.

keywords.py: the masking rule; config.py: its settings; train.py: the loss and the training.
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
from p2w_lib.methods.lincir.config import LinCIRConfig
from p2w_lib.methods.lincir.train import train_lincir
from p2w_lib.methods.phi_runs import CHECKPOINT_NAME, PhiResult, load_phi


def _train(x: TrainInputs) -> PhiResult:
    return train_lincir(
        x.clip, x.captions(), replace(x.settings["lincir"], seed=x.seed), x.out_dir, restart_on_change=True
    )


def _network(x: NetworkInputs):
    return load_phi(x.released or x.model_dir / CHECKPOINT_NAME, x.clip)


METHOD = QueryMethod(
    "lincir",
    "LinCIR",
    "lin",
    pseudo_token("lincir"),
    "#8e24aa",
    training=Training(
        sections={"lincir": LinCIRConfig},
        folder="lincir",
        network=_network,
        train=_train,
        checkpoint=CHECKPOINT_NAME,
        stage="train_lincir",
        notebook="03_train_lincir",
        switch="lincir.enabled",
        released="eval.lincir_checkpoint",
        cli_option="--phi",
        loss_plot="lincir_loss",
    ),
    protocol="searle",  # its published numbers are under SEARLE's prompts (protocols/common.py)
)
