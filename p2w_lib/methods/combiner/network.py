"""Combiner (Baldrati et al., CVPR 2022 workshops; ABaldrati/CLIP4Cir `src/combiner.py`): a supervised
fusion of a reference image's and a relative caption's frozen CLIP features into the target's.

    t' = Dropout(ReLU(W_t t)),  v' = Dropout(ReLU(W_v v))          # [B, P] each, P = projection_dim
    c  = concat(t', v')                                            # [B, 2P], text first
    h  = Dropout(ReLU(W_c c));  lambda = Sigmoid(W_2 Dropout(ReLU(W_1 c)))   # [B, H], [B, 1]
    q  = normalise(W_o h + lambda t + (1 - lambda) v)              # [B, D]: residual on the raw features
    logits = 100 q . normalise(target)^T                          # fixed scale, not learned

Every dropout is 0.5, as the original. Layer names follow the original's, so a CLIP4Cir
`{"Combiner": state_dict}` release loads as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOGIT_SCALE = 100.0
DROPOUT = 0.5


@dataclass(frozen=True)
class CombinerShape:
    clip_dim: int  # D, CLIP's joint embedding width
    projection_dim: int  # P (the original: 4 x D for RN50x4, 2560 for 640)
    hidden_dim: int  # H (the original: 8 x D, 5120)


class Combiner(nn.Module):
    def __init__(self, shape: CombinerShape):
        super().__init__()
        self.shape = shape
        d, p, h = shape.clip_dim, shape.projection_dim, shape.hidden_dim
        self.text_projection_layer = nn.Linear(d, p)
        self.image_projection_layer = nn.Linear(d, p)
        self.dropout1 = nn.Dropout(DROPOUT)
        self.dropout2 = nn.Dropout(DROPOUT)
        self.combiner_layer = nn.Linear(2 * p, h)
        self.output_layer = nn.Linear(h, d)
        self.dropout3 = nn.Dropout(DROPOUT)
        self.dynamic_scalar = nn.Sequential(
            nn.Linear(2 * p, h), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(h, 1), nn.Sigmoid()
        )

    def forward(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        """The composed query [B, D], L2-normalised, from unnormalised image and text features [B, D]."""
        text = self.dropout1(F.relu(self.text_projection_layer(text_feats)))  # [B, P]
        image = self.dropout2(F.relu(self.image_projection_layer(image_feats)))  # [B, P]
        joint = torch.cat((text, image), dim=-1)  # [B, 2P]
        hidden = self.dropout3(F.relu(self.combiner_layer(joint)))  # [B, H]
        lam = self.dynamic_scalar(joint)  # [B, 1]
        out = self.output_layer(hidden) + lam * text_feats + (1 - lam) * image_feats  # [B, D]
        return F.normalize(out, dim=-1)


def in_batch_loss(predicted: torch.Tensor, target_feats: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each composed query [B, D] (normalised) over the batch's targets [B, D]
    (unnormalised), its own target being the label: CLIP4Cir's training loss."""
    logits = LOGIT_SCALE * predicted @ F.normalize(target_feats, dim=-1).T  # [B, B]
    return F.cross_entropy(logits, torch.arange(predicted.shape[0], device=predicted.device))


def shape_of_state(state: dict) -> CombinerShape:
    """The widths a Combiner state dict was built with (a release names none)."""
    try:
        p, d = state["text_projection_layer.weight"].shape
        h = state["combiner_layer.weight"].shape[0]
    except (KeyError, AttributeError, ValueError) as err:
        raise ValueError(f"not a Combiner state dict (keys {sorted(state)[:6]})") from err
    return CombinerShape(int(d), int(p), int(h))
