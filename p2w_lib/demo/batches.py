"""Batches with hard negatives for demo CLIP pretraining.

In a random batch of the demo world, a photo's caption is usually told apart from the others by
its colour, pattern and size alone (`a photo of a large red striped star`): the contrastive loss is
satisfied without the image tower learning the object's shape, and the CLIP recognises colours but
not what is in a photo. Part of each batch is therefore drawn in groups of images whose captions
read the same once the object word is masked (`a photo of a large red striped _`): within a group,
only the object tells the pairs apart, the way web-scale batches hold many near-duplicate captions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from p2w_lib.training.schedule import batch_indices


def caption_groups(captions: Sequence[str], words: Sequence[str]) -> list[list[int]]:
    """Indices of captions equal up to the object word, for groups that name at least two objects."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + r")\b")
    by_key: dict[str, list[int]] = {}
    named: dict[str, set[str]] = {}
    for i, caption in enumerate(captions):
        found = pattern.findall(caption)
        if len(found) != 1:
            continue  # no object word, or several: not a clean swap
        key = pattern.sub("_", caption)
        by_key.setdefault(key, []).append(i)
        named.setdefault(key, set()).add(found[0])
    return [rows for key, rows in sorted(by_key.items()) if len(named[key]) >= 2]


def mixed_batch(
    step: int, n: int, batch_size: int, seed: int, groups: list[list[int]], fraction: float, group_size: int = 8
) -> torch.Tensor:
    """Indices [B] of one step: `fraction` of the batch from groups (up to `group_size` each), the
    rest from the epoch order of `batch_indices`. A pure function of (seed, step), so a resumed run
    sees the same batches."""
    n_hard = min(int(batch_size * fraction), sum(map(len, groups)))
    rest = batch_indices(step, n, batch_size, seed)  # [B] the uniform part, in epoch order
    if n_hard == 0:
        return rest
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step * 7 + 1)
    picked: list[int] = []
    seen: set[int] = set()
    while len(picked) < n_hard:
        rows = groups[int(torch.randint(len(groups), (1,), generator=gen))]
        take = [rows[i] for i in torch.randperm(len(rows), generator=gen).tolist() if rows[i] not in seen]
        take = take[: min(group_size, n_hard - len(picked))]
        picked += take
        seen.update(take)
    fill = [i for i in rest.tolist() if i not in seen][: batch_size - n_hard]
    return torch.tensor(picked + fill, dtype=torch.long)
