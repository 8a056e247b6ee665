"""Pic2Word's training objective: symmetric contrastive loss between an image and the prompt
`a photo of *` composed with that image's own pseudo token."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(image_feats: torch.Tensor, text_feats: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """(CE(image->text) + CE(text->image)) / 2 over normalised [B, D] features; the i-th pair is positive."""
    logits = logit_scale * image_feats @ text_feats.T  # [B, B]
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
