"""Slerp against its formula written out per query, its invariants, and the alpha each protocol uses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from p2w_lib.methods.registry import compose_queries
from p2w_lib.methods.slerp import PAPER_ALPHA, alpha_for, slerp
from tests.slerp_reference import slerp_reference


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 0.9, 1.0])
def test_matches_the_formula_written_out(alpha):
    image, text = unit(16, 24, seed=1), unit(16, 24, seed=2)
    got = slerp(image, text, alpha)
    for i in range(16):
        assert torch.allclose(got[i], slerp_reference(image[i], text[i], alpha), atol=1e-6), i


def test_walks_the_great_circle():
    """Unit norm, alpha = 0 is the image and 1 the text, and the query sits at alpha * theta from the
    image and (1 - alpha) * theta from the text, in the plane of the two."""
    image, text = unit(32, 8, seed=3), unit(32, 8, seed=4)
    theta = torch.arccos((image * text).sum(-1))
    out = slerp(image, text, 0.8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(32), atol=1e-6)
    assert torch.allclose(torch.arccos((out * image).sum(-1).clamp(-1, 1)), 0.8 * theta, atol=1e-4)
    assert torch.allclose(torch.arccos((out * text).sum(-1).clamp(-1, 1)), 0.2 * theta, atol=1e-4)
    assert torch.allclose(slerp(image, text, 0.0), image, atol=1e-6)
    assert torch.allclose(slerp(image, text, 1.0), text, atol=1e-6)


def test_parallel_rows_and_bad_alpha():
    v = unit(3, 8, seed=5)
    assert torch.allclose(slerp(v, v, 0.8), v, atol=1e-6)  # theta = 0: no 0 / 0
    assert not torch.isnan(slerp(v, v, 0.5)).any()
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\].*got 1.5"):
        slerp(v, v, 1.5)


def test_the_papers_alpha_per_benchmark():
    assert PAPER_ALPHA == {"cirr": 0.9, "circo": 0.8, "fashion_iq": 0.8}
    assert alpha_for("cirr") == 0.9 and alpha_for("domain_conversion") == 0.8 and alpha_for(None) == 0.8


def test_compose_queries_takes_the_benchmarks_alpha(clip):
    feats = torch.randn(3, clip.embed_dim)
    prompts = ["a photo of * , is red"] * 3
    asked = {
        b: compose_queries(clip, None, feats, prompts, methods=["image_only", "text_only", "slerp"], benchmark=b)
        for b in ("domain_conversion", "cirr")
    }
    out = {0.8: asked["domain_conversion"], 0.9: asked["cirr"]}
    for a, q in out.items():
        expected = torch.stack([slerp_reference(q["image_only"][i], q["text_only"][i], a) for i in range(3)])
        assert torch.allclose(q["slerp"], expected, atol=1e-6)
    assert not torch.allclose(out[0.8]["slerp"], out[0.9]["slerp"])
    assert math.isclose(float((out[0.9]["slerp"] * out[0.9]["slerp"]).sum(-1)[0]), 1.0, abs_tol=1e-5)


def test_a_chosen_alpha_overrides_the_benchmarks(clip):
    feats = torch.randn(2, clip.embed_dim)
    prompts = ["a photo of * , is red"] * 2
    q = compose_queries(
        clip,
        None,
        feats,
        prompts,
        methods=["image_only", "text_only", "slerp"],
        benchmark="cirr",
        options={"slerp": {"alpha": 0.3}},
    )
    expected = torch.stack([slerp_reference(q["image_only"][i], q["text_only"][i], 0.3) for i in range(2)])
    assert torch.allclose(q["slerp"], expected, atol=1e-6)


def test_half_way_is_the_papers_image_plus_text():
    """For unit vectors the normalised sum is the spherical midpoint: image + text is Slerp at 0.5."""
    image, text = unit(16, 24, seed=6), unit(16, 24, seed=7)
    assert torch.allclose(slerp(image, text, 0.5), F.normalize(image + text, dim=-1), atol=1e-6)
