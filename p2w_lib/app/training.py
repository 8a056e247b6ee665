"""The training stages: one method's network per seed, as the method's declaration says.

Every trained method declares its training entry, folder, switch and loss log (methods/base.py,
Training); `train_method` runs any of them the same way, so a new method needs no code here.
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import torch.distributed as dist

from p2w_lib.app import models, training_data
from p2w_lib.methods import registry
from p2w_lib.methods.base import TrainInputs
from p2w_lib.methods.pic2word.train import CHECKPOINT_NAME, LOG_NAME, TrainResult

log = logging.getLogger(__name__)


def train_seed(p, method: str, seed: int, clip=None):
    """Train (or resume, or reuse) `method`'s network of `seed` in its model folder."""
    training = registry.QUERY_METHODS[method].training
    # Launch torchrun from the stage, never from inside one of its processes (which would spawn its own).
    if training.distributed and p.launch.nproc_per_node > 1 and not dist.is_initialized():
        return _torchrun_training(p, seed)
    inputs = TrainInputs(
        clip or models.clip_for(p, seed),
        seed,
        p.method_settings(method),
        p.model_dir(method, seed),
        p.cache_dir,
        lambda: training_data.training_images(p),
        lambda: training_data.training_captions(p),
        lambda source: training_data.training_triplets(p, source),
    )
    return training.train(inputs)


def train_method(p, method: str) -> dict:
    """Train `method` per seed; its loss logs are copied to results/plots/<loss_plot>/ for `dvc plots`.
    Switched off (its switch false in params.yaml), it trains nothing and leaves a note where the models would be."""
    m = registry.QUERY_METHODS[method]
    plots = p.results_dir / "plots" / m.training.loss_plot
    plots.mkdir(parents=True, exist_ok=True)
    runs = {}
    if not _switch_note(
        p.models_dir / m.training.folder,
        p.enabled(method),
        f"{m.training.switch} is false in params.yaml: no {m.label} model was trained",
    ):
        return runs
    for seed in p.seeds:
        runs[seed] = train_seed(p, method, seed)
        shutil.copyfile(runs[seed].log_csv, plots / f"seed{seed}.csv")
    return runs


def train_mappers(p) -> dict:
    """Pic2Word's mapper per seed."""
    return train_method(p, "pic2word")


def train_lincirs(p) -> dict:
    """LinCIR's phi per seed (captions only)."""
    return train_method(p, "lincir")


def train_searles(p) -> dict:
    """SEARLE per seed: OTI of its images, then phi distilled from the tokens."""
    return train_method(p, "searle")


def train_stage(p, stage: str) -> dict[str, dict]:
    """{method: {seed: run}} of every method trained in DVC stage `stage` (Combiner's: one per triplet source)."""
    return {name: train_method(p, name) for name, m in registry.trained().items() if m.training.stage == stage}


def _switch_note(folder: Path, enabled: bool, note: str) -> bool:
    """`enabled`, after leaving `note` in `folder` when a method is switched off (a DVC output must
    exist) and removing it when the method is switched back on."""
    marker = folder / "SWITCHED_OFF.txt"
    if enabled:
        marker.unlink(missing_ok=True)
        return True
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(note + "\n")
    return False


def _torchrun_training(p, seed: int) -> TrainResult:
    """Train the mapper under torchrun, one process per GPU (`python -m p2w_lib train`), then read the result back."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={p.launch.nproc_per_node}",
        "-m",
        "p2w_lib",
        "train",
        "--profile",
        p.name,
        "--seed",
        str(seed),
    ]
    log.info("launching %s", " ".join(cmd))
    subprocess.run(cmd, check=True)  # a failing rank fails the stage with torchrun's own report
    with open(p.mapper_dir(seed) / LOG_NAME, newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    checkpoint = p.mapper_dir(seed) / CHECKPOINT_NAME
    return TrainResult(
        mapper=models.mapper_for(p, seed, models.clip_for(p, seed)),
        steps=int(last["step"]),
        last_loss=float(last["loss"]),
        checkpoint=checkpoint,
        log_csv=p.mapper_dir(seed) / LOG_NAME,
    )
