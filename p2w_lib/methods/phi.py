"""The textual-inversion network phi of SEARLE and LinCIR: CLIP embedding -> pseudo word token.

Both papers use the same network (SEARLE's `src/phi.py`, copied by LinCIR's `models.py`):
Linear(in, hidden) -> GELU -> Dropout -> Linear(hidden, hidden) -> GELU -> Dropout -> Linear(hidden,
token width). LinCIR sets hidden = 4 x the CLIP embedding width and dropout 0.5. Its input is the
*unnormalised* CLIP embedding: of a caption while training, of the reference image at query time.
Parameter names match the official (`layers.0.weight` ... `layers.6.bias`), so their released
`{"Phi": state_dict}` files load without renaming.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PhiShape:
    input_dim: int  # the CLIP embedding width
    hidden_dim: int
    output_dim: int  # the text tower's token width
    dropout: float


class Phi(nn.Module):
    def __init__(self, shape: PhiShape):
        super().__init__()
        self.shape = shape
        self.layers = nn.Sequential(
            nn.Linear(shape.input_dim, shape.hidden_dim),
            nn.GELU(),
            nn.Dropout(shape.dropout),
            nn.Linear(shape.hidden_dim, shape.hidden_dim),
            nn.GELU(),
            nn.Dropout(shape.dropout),
            nn.Linear(shape.hidden_dim, shape.output_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.shape.input_dim:
            raise ValueError(
                f"phi expects embeddings of width {self.shape.input_dim}, got {tuple(features.shape)}; "
                "was it trained for another CLIP?"
            )
        return self.layers(features)  # [B, W]


def shape_of_state(state: dict[str, torch.Tensor], dropout: float = 0.0) -> PhiShape:
    """The shape of a phi state dict (an official release carries no config)."""
    needed = [f"layers.{i}.weight" for i in (0, 3, 6)]
    if not all(k in state for k in needed) or len(state) != 6:
        raise ValueError(
            f"not a SEARLE/LinCIR phi state dict: expected {needed} and their biases, got {sorted(state)[:8]}"
        )
    first, last = state["layers.0.weight"], state["layers.6.weight"]
    return PhiShape(input_dim=first.shape[1], hidden_dim=first.shape[0], output_dim=last.shape[0], dropout=dropout)
