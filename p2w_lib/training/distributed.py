"""torch.distributed helpers for training under torchrun: the rank, and the all-gathered global batch."""

from __future__ import annotations

import torch


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather_batch(feats: torch.Tensor) -> torch.Tensor:
    """All ranks' [B, D] features as [W*B, D], differentiable, so the loss sees the global batch.

    The gather's backward sums every rank's gradient for this rank's rows (W identical losses),
    and DDP then averages parameter gradients over the W ranks: together, exactly the gradient of
    the global-batch loss, as in a single process.
    """
    if dist_info()[1] == 1:
        return feats
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(feats))
