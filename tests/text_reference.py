"""The slow reference every pseudo-token method's loss is tested against (LinCIR, SEARLE)."""

from __future__ import annotations

import copy

import torch

from p2w_lib.clip.composed import PLACEHOLDER, placeholder_token_id


def swapped_embedding_encode(clip, texts, tokens) -> torch.Tensor:
    """Each text through the plain text encoder of a CLIP copy whose `*` embedding row *is* that
    text's pseudo token (full context, no truncation): what "the token stands in for `*`" means,
    with none of the library's injection code. [B, D], unnormalised."""
    star = placeholder_token_id(clip.tokenizer)
    out = []
    for text, token in zip(texts, tokens):
        model = copy.deepcopy(clip.model)
        with torch.no_grad():
            model.token_embedding.weight[star] = token
        out.append(model.encode_text(clip.tokenizer([text]), normalize=False)[0])
    return torch.stack(out)


def first_only_encode(clip, texts, tokens) -> torch.Tensor:
    """As swapped_embedding_encode, but the token stands in for the *first* `*` only; later ones stay
    the literal `*` word. Built the original's way round: the first `*` becomes `$` (a word none of the
    texts holds) and the copy's `$` row is the token, so no position is picked by our code."""
    dollar = int(clip.tokenizer(["$"])[0][1])
    out = []
    for text, token in zip(texts, tokens):
        assert "$" not in text
        model = copy.deepcopy(clip.model)
        with torch.no_grad():
            model.token_embedding.weight[dollar] = token
        out.append(model.encode_text(clip.tokenizer([text.replace(PLACEHOLDER, "$", 1)]), normalize=False)[0])
    return torch.stack(out)
