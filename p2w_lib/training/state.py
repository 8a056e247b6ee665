"""What a resumable run saves besides its weights: the RNG state and the identity of its training list."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_id(paths: Sequence[str]) -> str:
    """Identity of a training list (its paths, in order): a changed list is another run."""
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode() + b"\0")
    return h.hexdigest()
