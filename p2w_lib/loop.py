"""The training loop every trainer of the library runs: the Pic2Word mapper, LinCIR's phi and the
demo CLIP. A trainer supplies one optimisation step and how to checkpoint; the loop owns what they
share: the step range after a resume, the progress bar, the CSV log (trimmed to the resume point,
one row per `log_every` steps, flushed before each checkpoint) and the periodic checkpoints.

Which checkpoint is stale, and what a finished run saves, stay with each trainer: they differ.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from .io_utils import trim_step_log


@dataclass(frozen=True)
class StepLog:
    """What one step reports: its log row after the step number (formatted) and its loss."""

    values: Sequence[str]
    loss: float


@dataclass(frozen=True)
class Loop:
    log_path: Path
    columns: Sequence[str]  # the log's columns after `step`
    total: int  # steps of the whole run (the progress bar's end)
    desc: str
    checkpoint_every: int
    log_every: int = 1
    write: bool = True  # False on all but one process of a distributed run

    def run(self, start: int, stop: int, step: Callable[[int], StepLog], checkpoint: Callable[[int], None]) -> float:
        """Steps start..stop-1; checkpoints after every `checkpoint_every`-th (not the last: the trainer
        saves the finished run itself). Returns the last step's loss (nan when nothing ran)."""
        if self.write:
            trim_step_log(self.log_path, start)
        new = not self.log_path.is_file()
        loss = float("nan")
        with open(self.log_path if self.write else os.devnull, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["step", *self.columns])
            bar = tqdm(range(start, stop), desc=self.desc, unit="step", initial=start, total=self.total,
                       disable=not self.write)
            for i in bar:
                row = step(i)
                loss = row.loss
                if (i + 1) % self.log_every == 0 or i + 1 == stop:
                    writer.writerow([i + 1, *row.values])
                    fh.flush()  # a killed run keeps its log up to the last step it took
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)  # the bar redraws at its own interval
                if (i + 1) % self.checkpoint_every == 0 and i + 1 < stop:
                    checkpoint(i + 1)
        return loss
