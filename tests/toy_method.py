"""A trained query method declared outside the package, as docs/extending.md walks through it.

The toy's network is one linear map from the image embedding to a pseudo token, trained on the
training captions so that phi(text embedding of a caption) is the token embedding of the caption's
first word. It is not meant to retrieve well; it is meant to touch every part a real trained
method touches: a params.yaml section with ranges, a training entry with a loss log, a checkpoint,
a loader, and composition through the shared prompt path.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from p2w_lib.core.config import positive
from p2w_lib.core.files import atomic_torch_save
from p2w_lib.methods.base import NetworkInputs, QueryMethod, Training, TrainInputs, pseudo_token

CHECKPOINT = "toy.pt"
LOG = "loss_log.csv"


@dataclass(frozen=True)
class ToyConfig:
    RANGES: ClassVar[dict] = {"steps": (positive, "at least 1"), "lr": (positive, "> 0")}

    steps: int = 3
    lr: float = 0.05


@dataclass(frozen=True)
class ToyRun:
    checkpoint: Path
    log_csv: Path
    losses: list[float]


def _first_word_tokens(clip, captions: list[str]) -> torch.Tensor:
    tokens = clip.tokenizer(captions).to(clip.device)  # [N, L]; position 0 is the start token
    return clip.model.token_embedding(tokens[:, 1]).float()  # [N, W]


def train(x: TrainInputs) -> ToyRun:
    cfg = x.settings["toy"]
    captions = x.captions()[:32]
    torch.manual_seed(x.seed)
    with torch.no_grad():
        feats = x.clip.encode_text(captions).float()  # [N, D]
        target = _first_word_tokens(x.clip, captions)  # [N, W]
    net = nn.Linear(x.clip.embed_dim, x.clip.token_dim)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(cfg.steps):
        loss = nn.functional.mse_loss(net(feats), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    x.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(net.state_dict(), x.out_dir / CHECKPOINT)
    with open(x.out_dir / LOG, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss"])
        writer.writerows((i + 1, v) for i, v in enumerate(losses))
    return ToyRun(x.out_dir / CHECKPOINT, x.out_dir / LOG, losses)


def network(x: NetworkInputs) -> nn.Module:
    net = nn.Linear(x.clip.embed_dim, x.clip.token_dim)
    net.load_state_dict(torch.load(x.released or x.model_dir / CHECKPOINT, weights_only=True))
    return net.to(x.clip.device)


METHOD = QueryMethod(
    "toy",
    "Toy",
    "toy",
    pseudo_token("toy"),
    "#795548",
    training=Training(
        sections={"toy": ToyConfig},
        folder="toy",
        network=network,
        train=train,
        checkpoint=CHECKPOINT,
        loss_plot="toy_loss",
    ),
)
