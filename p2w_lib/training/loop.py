"""The training loop every trainer of the library runs: the Pic2Word mapper, LinCIR's and SEARLE's
phi, and the demo CLIP. A trainer supplies one optimisation step, its learning-rate schedule and how to
checkpoint; the loop owns what they share: the step range after a resume, setting each step's
learning rate, the progress bar, the CSV log (trimmed to the resume point, one row per `log_every`
steps, ending with the step's lr) and the periodic checkpoints.

Which checkpoint is stale, and what a finished run saves, stay with each trainer: they differ.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from p2w_lib.core.files import trim_step_log


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random draws of one step (or batch, or epoch) of a run: a function of (seed, step) alone,
    so a resumed run draws what an uninterrupted one would have."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def last_logged_loss(path: Path) -> float:
    """The `loss` column of a training log's last row (nan without one)."""
    if not path.is_file():
        return float("nan")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return float(rows[-1]["loss"]) if rows else float("nan")


@dataclass(frozen=True)
class StepLog:
    """What one step reports: its log row after the step number (formatted) and its loss."""

    values: Sequence[str]  # the columns between `step` and `lr`
    loss: float


@dataclass(frozen=True)
class Loop:
    log_path: Path
    columns: Sequence[str]  # the log's columns between `step` and `lr`
    total: int  # steps of the whole run (the progress bar's end)
    desc: str
    checkpoint_every: int
    log_every: int = 1
    write: bool = True  # False on all but one process of a distributed run

    def run(
        self,
        start: int,
        stop: int,
        optimizer: torch.optim.Optimizer,
        schedule: Callable[[int], float],
        step: Callable[[int], StepLog],
        checkpoint: Callable[[int], None],
    ) -> float:
        """Steps start..stop-1, each at learning rate schedule(i); checkpoints after every
        `checkpoint_every`-th (not the last: the trainer saves the finished run itself). Returns the
        last step's loss, or the log's last loss when the run had already finished."""
        if self.write:
            trim_step_log(self.log_path, start)
        if start >= stop:
            return last_logged_loss(self.log_path)
        new = not self.log_path.is_file()
        with open(self.log_path if self.write else os.devnull, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["step", *self.columns, "lr"])
            bar = tqdm(
                range(start, stop), desc=self.desc, unit="step", initial=start, total=self.total, disable=not self.write
            )
            for i in bar:
                lr = schedule(i)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                row = step(i)
                loss = row.loss
                if (i + 1) % self.log_every == 0 or i + 1 == stop:
                    writer.writerow([i + 1, *row.values, f"{lr:.3e}"])
                    fh.flush()  # a killed run keeps its log up to the last step it took
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)  # the bar redraws at its own interval
                if (i + 1) % self.checkpoint_every == 0 and i + 1 < stop:
                    checkpoint(i + 1)
        return loss
