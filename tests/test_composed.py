"""Pseudo-token composition: against open_clip itself, a slow hand-written reference, and the
full-context computation that truncation must reproduce."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from p2w_lib import Mapper, encode_composed
from p2w_lib.clip.composed import encode_composed_tokens, text_tower, tokenize_prompts
from tests.conftest import FIXTURES, tiny_clip

WORDS = "a photo of red blue striped dress shirt with long sleeves is darker and has logo origami toy cartoon".split()


def random_prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(0, 18))]
        words.insert(rng.randint(0, len(words)), "*")
        prompts.append(" ".join(words))
    return prompts


def reference_composed(model, tokenizer, prompts, pseudo):
    """Slow and obvious: one prompt at a time, full 77-token context, `*` replaced by torch.cat."""
    tower = text_tower(model)
    star = tokenizer.encode("*")[0]
    out = []
    for prompt, token in zip(prompts, pseudo):
        ids = tokenizer([prompt])[0]  # [77]
        pos = int((ids == star).nonzero())
        emb = tower.token_embedding(ids)  # [77, W]
        emb = torch.cat([emb[:pos], token[None], emb[pos + 1 :]])
        x = tower.transformer(emb[None] + tower.positional_embedding, attn_mask=tower.attn_mask)  # [1, 77, W]
        x = tower.ln_final(x)[0, int(ids.argmax())]  # [W]
        out.append(x @ tower.text_projection)
    return F.normalize(torch.stack(out), dim=-1)


@pytest.mark.parametrize("seed", [0, 1])
def test_star_embedding_reproduces_open_clip_encode_text(seed):
    clip = tiny_clip(seed)
    prompts = random_prompts(16, seed)
    star = clip.model.token_embedding.weight[clip.tokenizer.encode("*")[0]]
    pseudo = star.expand(len(prompts), -1)
    ours = encode_composed(clip.model, clip.tokenizer, prompts, pseudo)
    theirs = clip.model.encode_text(clip.tokenizer(prompts), normalize=True)
    assert (ours - theirs).abs().max() <= 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_truncated_context_equals_full_context(seed):
    clip = tiny_clip(seed)
    prompts = random_prompts(32, seed + 10)
    pseudo = torch.randn(len(prompts), clip.token_dim, generator=torch.Generator().manual_seed(seed))
    tokens = tokenize_prompts(clip.model, clip.tokenizer, prompts)
    assert int(tokens.pool_pos.max()) + 1 < tokens.ids.shape[1]  # truncation really happens
    short = encode_composed_tokens(clip.model, tokens, pseudo, truncate=True)
    full = encode_composed_tokens(clip.model, tokens, pseudo, truncate=False)
    assert (short - full).abs().max() <= 1e-5


def test_injection_matches_hand_written_reference(clip):
    prompts = random_prompts(12, 3)
    pseudo = torch.randn(len(prompts), clip.token_dim, generator=torch.Generator().manual_seed(3))
    ours = encode_composed(clip.model, clip.tokenizer, prompts, pseudo)
    ref = reference_composed(clip.model, clip.tokenizer, prompts, pseudo)
    assert (ours - ref).abs().max() <= 1e-5


def test_mixed_star_positions_in_one_batch_equal_single_prompts(clip):
    prompts = ["* is red", "a photo of *", "a photo of * , is striped and has long sleeves", "a * of a dress"]
    pseudo = torch.randn(len(prompts), clip.token_dim, generator=torch.Generator().manual_seed(4))
    batch = encode_composed(clip.model, clip.tokenizer, prompts, pseudo)
    single = torch.cat([encode_composed(clip.model, clip.tokenizer, [p], t[None]) for p, t in zip(prompts, pseudo)])
    assert (batch - single).abs().max() <= 1e-5
    # and the pseudo token matters: swapping tokens between rows changes the result
    swapped = encode_composed(clip.model, clip.tokenizer, prompts, pseudo.flip(0))
    assert (batch - swapped).abs().max() > 1e-3


def test_bidirectional_text_tower_falls_back_to_full_context():
    clip = tiny_clip(0, model=str(FIXTURES / "clip-bidir"))
    assert not text_tower(clip.model).is_causal
    prompts = random_prompts(8, 5)
    star = text_tower(clip.model).token_embedding.weight[clip.tokenizer.encode("*")[0]]
    ours = encode_composed(clip.model, clip.tokenizer, prompts, star.expand(len(prompts), -1))
    theirs = clip.model.encode_text(clip.tokenizer(prompts), normalize=True)
    assert (ours - theirs).abs().max() <= 1e-5


def test_normalize_flag(clip):
    pseudo = torch.randn(2, clip.token_dim)
    raw = encode_composed(clip.model, clip.tokenizer, ["a photo of *", "* , is red"], pseudo, normalize=False)
    unit = encode_composed(clip.model, clip.tokenizer, ["a photo of *", "* , is red"], pseudo)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(2))
    assert torch.allclose(F.normalize(raw, dim=-1), unit, atol=1e-6)


@pytest.mark.parametrize(
    "prompt, message",
    [("a photo of a cat", "exactly once"), ("a * of *", "exactly once"), ("a photo of *, is red", "separate word")],
)
def test_bad_prompts_name_the_prompt(clip, prompt, message):
    with pytest.raises(ValueError, match=message) as err:
        encode_composed(clip.model, clip.tokenizer, [prompt], torch.zeros(1, clip.token_dim))
    assert prompt in str(err.value)


def test_wrong_pseudo_token_shape(clip):
    with pytest.raises(ValueError, match="pseudo_tokens has shape"):
        encode_composed(clip.model, clip.tokenizer, ["a photo of *"], torch.zeros(1, clip.token_dim + 1))


def test_mapper_gets_gradients_clip_gets_none(clip):
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=16)
    feats = torch.randn(4, clip.embed_dim)
    out = encode_composed(clip.model, clip.tokenizer, ["a photo of *"] * 4, mapper(feats))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mapper.parameters())
    assert all(not p.requires_grad and p.grad is None for p in clip.model.parameters())


def test_recorded_output_of_seeded_tiny_model(clip):
    """Guards against silent changes in composition or model construction (seeded random weights)."""
    pseudo = torch.linspace(-1, 1, clip.token_dim)[None]
    out = encode_composed(clip.model, clip.tokenizer, ["a photo of * , is red"], pseudo)[0]
    recorded = torch.tensor(RECORDED)
    assert (out[:6] - recorded).abs().max() <= 1e-4


RECORDED = [-0.166982, -0.218216, 0.141384, 0.085344, -0.165433, -0.197498]


def test_length_bucketed_text_tower_equals_one_batch(clip):
    from p2w_lib.clip.composed import (
        pool_positions,
        run_text_tower,
        run_text_tower_bucketed,
    )

    texts = [p.replace("*", "word") for p in random_prompts(40, 7)]
    ids = clip.tokenizer(texts)
    pool = pool_positions(ids, text_tower(clip.model))
    one = run_text_tower(clip.model, ids, pool)
    bucketed = run_text_tower_bucketed(clip.model, ids, pool, n_buckets=5)
    assert (one - bucketed).abs().max() <= 1e-5
    assert torch.allclose(one, clip.model.encode_text(ids, normalize=True), atol=1e-5)
