"""The Pic2Word mapping network (the original's IM2TEXT): CLIP image embedding -> pseudo word token."""

from __future__ import annotations

import torch
from torch import nn

from p2w_lib.methods.pic2word.config import MapperConfig


class Mapper(nn.Module):
    """n_layers x (Linear -> Dropout -> ReLU) with `hidden_dim` units, then `fc_out` to the text width.

    Input is the *unnormalised* CLIP image embedding, as in the official code. Parameter names
    match the official IM2TEXT (`layers.0.0.weight`, ..., `fc_out.weight`), so an official
    checkpoint's `state_dict_img2text` loads without renaming.
    """

    def __init__(self, embed_dim: int, token_dim: int, hidden_dim: int = 512, n_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.embed_dim, self.token_dim = embed_dim, token_dim
        blocks, dim = [], embed_dim
        for _ in range(n_layers):
            blocks.append(nn.Sequential(nn.Linear(dim, hidden_dim), nn.Dropout(dropout), nn.ReLU()))
            dim = hidden_dim
        self.layers = nn.Sequential(*blocks)
        self.fc_out = nn.Linear(dim, token_dim)

    @classmethod
    def from_config(cls, cfg: MapperConfig, embed_dim: int, token_dim: int) -> Mapper:
        return cls(embed_dim, token_dim, cfg.hidden_dim, cfg.n_layers, cfg.dropout)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        if image_features.shape[-1] != self.embed_dim:
            raise ValueError(
                f"mapper expects image embeddings of width {self.embed_dim}, got {tuple(image_features.shape)}; "
                "was it trained for another CLIP?"
            )
        return self.fc_out(self.layers(image_features))  # [B, W]
