"""Prefix-cached composition against the full-context computation and the slow per-prompt reference."""

from __future__ import annotations

import pytest
import torch

from p2w_lib.clip.composed import (
    ComposedTokens,
    encode_composed_tokens,
    tokenize_prompts,
)
from p2w_lib.clip.prefix_cache import PrefixCachedText, supports_prefix_cache
from tests.conftest import tiny_clip
from tests.test_composed import random_prompts, reference_composed

EVAL_PROMPTS = [
    "a photo of *",
    "a cartoon of *",
    "a origami of *",
    "a photo of * , is red and has a white logo",
    "* is red",
    "a photo of * , is striped",
    "a cartoon of *",
    "a toy of *",
]


@pytest.mark.parametrize("model", ["p2w-tiny", "p2w-demo"])
@pytest.mark.parametrize("seed", [0, 1])
def test_prefix_cached_features_equal_full_context(model, seed):
    clip = tiny_clip(seed, model)
    prompts = random_prompts(40, seed + 20) + EVAL_PROMPTS  # many prefixes and `*` positions, one batch
    pseudo = torch.randn(len(prompts), clip.token_dim, generator=torch.Generator().manual_seed(seed))
    tokens = tokenize_prompts(clip.model, clip.tokenizer, prompts)
    assert len(set(tokens.star_pos.tolist())) > 5
    cached = PrefixCachedText(clip.model)
    ours = cached.encode(tokens, pseudo)
    full = encode_composed_tokens(clip.model, tokens, pseudo, truncate=False)
    assert (ours - full).abs().max() <= 1e-5
    # Second call: served from the cache (one entry per distinct prefix), same features.
    n_prefixes = len({tuple(ids[:s]) for ids, s in zip(tokens.ids.tolist(), tokens.star_pos.tolist())})
    assert len(cached) == n_prefixes
    assert torch.equal(cached.encode(tokens, pseudo), ours)


def test_prefix_cached_matches_slow_reference(clip):
    prompts = EVAL_PROMPTS
    pseudo = torch.randn(len(prompts), clip.token_dim, generator=torch.Generator().manual_seed(5))
    ours = PrefixCachedText(clip.model).encode(tokenize_prompts(clip.model, clip.tokenizer, prompts), pseudo)
    assert (ours - reference_composed(clip.model, clip.tokenizer, prompts, pseudo)).abs().max() <= 1e-5


def test_gradients_to_pseudo_tokens_equal_full_context(clip):
    """Training back-propagates through the suffix only; the pseudo token's gradient must not change."""
    one = tokenize_prompts(clip.model, clip.tokenizer, ["a photo of *"])
    batch = 16
    tokens = ComposedTokens(one.ids.expand(batch, -1), one.star_pos.expand(batch), one.pool_pos.expand(batch))
    weights = torch.randn(batch, clip.embed_dim, generator=torch.Generator().manual_seed(1))
    grads = []
    for encode in (
        PrefixCachedText(clip.model).encode,
        lambda t, p: encode_composed_tokens(clip.model, t, p, truncate=False),
    ):
        pseudo = torch.randn(batch, clip.token_dim, generator=torch.Generator().manual_seed(2)).requires_grad_()
        (encode(tokens, pseudo) * weights).sum().backward()
        grads.append(pseudo.grad)
    assert (grads[0] - grads[1]).abs().max() <= 1e-5
    assert grads[0].abs().max() > 0


def test_unnormalised_and_open_clip_star():
    """With `*`'s own embedding as the pseudo token, the features are open_clip's encode_text."""
    clip = tiny_clip(2)
    prompts = EVAL_PROMPTS
    star = clip.model.token_embedding.weight[clip.tokenizer.encode("*")[0]]
    tokens = tokenize_prompts(clip.model, clip.tokenizer, prompts)
    ours = PrefixCachedText(clip.model).encode(tokens, star.expand(len(prompts), -1), normalize=False)
    theirs = clip.model.encode_text(clip.tokenizer(prompts))
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_unsupported_tower_is_refused_with_the_alternative():
    assert supports_prefix_cache(tiny_clip(0).model)
    with pytest.raises(ValueError, match="encode_composed_tokens"):
        PrefixCachedText(torch.nn.Linear(2, 2))
