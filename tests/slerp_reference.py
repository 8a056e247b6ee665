"""Slerp written out from the paper's formula, one query at a time in Python floats: the reference
p2w_lib.methods.slerp and every protocol's Slerp row are tested against."""

from __future__ import annotations

import math

import torch


def slerp_reference(image: torch.Tensor, text: torch.Tensor, alpha: float) -> torch.Tensor:
    """One unit query [D] from one unit image [D] and one unit text [D]."""
    v, w = image.double().tolist(), text.double().tolist()
    theta = math.acos(max(-1.0, min(1.0, sum(a * b for a, b in zip(v, w)))))
    if math.sin(theta) < 1e-12:
        return image.clone()
    a, b = math.sin((1 - alpha) * theta) / math.sin(theta), math.sin(alpha * theta) / math.sin(theta)
    out = [a * x + b * y for x, y in zip(v, w)]
    norm = math.sqrt(sum(x * x for x in out))
    return torch.tensor([x / norm for x in out], dtype=image.dtype)
