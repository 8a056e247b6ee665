"""Pure functions of the step: the learning rate and the data order, so a resumed run equals an uninterrupted one."""

from __future__ import annotations

import functools
import math

import torch

from p2w_lib.training.loop import step_generator


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to base_lr over warmup_steps, then cosine decay to 0 at total_steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / span)) * base_lr


@functools.lru_cache(maxsize=2)
def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a permutation depending only on (seed, epoch)."""
    return torch.randperm(n, generator=step_generator(seed, epoch))


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    steps_per_epoch = n // batch_size
    epoch, offset = divmod(step, steps_per_epoch)
    return epoch_order(n, seed, epoch)[offset * batch_size : (offset + 1) * batch_size]
