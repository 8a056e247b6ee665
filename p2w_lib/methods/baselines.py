"""The paper's training-free baselines: the reference image alone, the text alone, and their sum.

- image_only: the normalised image embedding;
- text_only: the normalised embedding of the prompt with `*` removed (e.g. `a origami of`),
  as the official ImageNet-R evaluation does;
- image_text: normalise(normalise(image) + normalise(text)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from p2w_lib.methods.base import QueryInputs, QueryMethod


def _image_text(q: QueryInputs) -> torch.Tensor:
    return F.normalize(q.image + q.text, dim=-1)  # [Q, D]


IMAGE_ONLY = QueryMethod("image_only", "image only", "img", lambda q: q.image, "#9e9e9e")
TEXT_ONLY = QueryMethod("text_only", "text only", "txt", lambda q: q.text, "#bdbdbd")
IMAGE_TEXT = QueryMethod("image_text", "image + text", "img+txt", _image_text, "#64b5f6")
