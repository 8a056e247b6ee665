"""LinCIR: the keyword rule, the multi-position pseudo token, the loss against a slow reference
written from the paper's definition, training (learns, resumes exactly, never reads an image),
and loading an official phi file."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from p2w_lib.clip.composed import PLACEHOLDER
from p2w_lib.methods.lincir.config import LinCIRConfig
from p2w_lib.methods.lincir.keywords import keyword_runs, mask_keywords
from p2w_lib.methods.lincir.train import (
    caption_embeddings,
    lincir_loss,
    noisy,
    tokenize_masked,
    train_lincir,
)
from p2w_lib.methods.phi import Phi, PhiShape
from p2w_lib.methods.phi_runs import StalePhiCheckpoint, load_phi, phi_shape
from p2w_lib.training.checkpoint import CheckpointError
from tests.conftest import tiny_world
from tests.text_reference import swapped_embedding_encode

CAPTIONS = [
    "a photo of a green dress",
    "a cartoon of a arrow , is blue",
    "a man riding a horse on the beach",
    "a photo of a toptee that has long sleeves and is checked",
    "two dogs playing in the snow",
    "a red, white and blue flag",
    "a sketch of a small circle",
    "the cat is on the sofa",
] * 4


# -- the keyword rule: runs of determiners, adjectives and nouns, as spaCy tags them -----------------


@pytest.mark.parametrize(
    "caption, runs, masked",
    [
        ("a photo of a green dress", ["a photo", "a green dress"], "* of *"),
        ("A man riding a horse on the beach", ["a man", "a horse", "the beach"], "* riding * on *"),
        (
            "a photo of a toptee that has long sleeves and is checked",
            ["a photo", "a toptee", "long sleeves", "checked"],
            "* of * that has * and is *",
        ),
        ("two dogs playing in the snow", ["dogs", "the snow"], "two * playing in *"),
        ("a red, white and blue flag", ["a red", "white", "blue flag"], "* , * and *"),
        ("his new clothing", ["new clothing"], "his *"),
    ],
)
def test_keyword_runs_follow_the_part_of_speech_rule(caption, runs, masked):
    assert keyword_runs(caption) == runs
    assert mask_keywords(caption) == masked


def test_captions_without_keywords_and_empty_captions_fall_back_as_the_original():
    assert mask_keywords("") == mask_keywords("  * ") == "a photo of *"  # the original strips its own `$` first
    out = mask_keywords("it is in there", rng=random.Random(3))
    assert out.count(PLACEHOLDER) == 1 and len(out.split()) == 4  # one word stands for the token


# -- composing several `*` with one token: against swapping the placeholder's embedding row ---------


def test_lincir_loss_equals_the_reference_built_from_the_definition(clip):
    torch.manual_seed(0)
    phi = Phi(PhiShape(clip.embed_dim, 32, clip.token_dim, 0.0)).eval()
    caps = CAPTIONS[:6]
    masked = [mask_keywords(c) for c in caps]
    assert sum(m.count(PLACEHOLDER) for m in masked) > len(masked)  # several `*` per caption are exercised
    targets = caption_embeddings(clip, caps)  # [B, D]
    inputs = noisy(targets, 1.0, torch.Generator().manual_seed(5))
    t = tokenize_masked(clip, masked)
    loss = lincir_loss(clip, phi, targets, inputs, t.ids, t.star, t.pool_pos)

    with torch.no_grad():
        plain = torch.stack([clip.model.encode_text(clip.tokenizer([c]), normalize=False)[0] for c in caps])
        g = torch.Generator().manual_seed(5)
        u, n = torch.rand(len(caps), 1, generator=g), torch.randn(plain.shape, generator=g)
        ref_tokens = phi(plain + u * n)
        ref = F.mse_loss(swapped_embedding_encode(clip, masked, ref_tokens), plain)
    assert torch.allclose(targets, plain, atol=1e-5)
    assert torch.allclose(loss, ref, rtol=1e-4, atol=1e-6)


def test_a_masked_caption_whose_every_star_is_cut_becomes_a_photo_of_star(clip):
    long = " ".join(["of"] * 80) + " *"
    t = tokenize_masked(clip, [long, "* of *"])
    assert t.star.sum(dim=1).tolist() == [1, 2]
    assert t.ids[0].tolist() == clip.tokenizer(["a photo of *"])[0].tolist()


# -- training ---------------------------------------------------------------------------------------

SMALL = LinCIRConfig(batch_size=8, steps=12, lr=1e-3, hidden_mult=1, checkpoint_every=5, seed=0)


def test_training_learns(clip, tmp_path):
    # Without the input noise and dropout the loss must fall steadily (with them, a tiny random CLIP's is noisy).
    cfg = LinCIRConfig(**{**vars(SMALL), "steps": 40, "noise_scale": 0.0, "dropout": 0.0})
    rows = train_lincir(clip, CAPTIONS, cfg, tmp_path / "a").log_csv.read_text().splitlines()[1:]
    losses = [float(r.split(",")[2]) for r in rows]
    assert len(losses) == 40 and sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_training_resumes_to_the_same_weights(clip, tmp_path):
    straight = train_lincir(clip, CAPTIONS, SMALL, tmp_path / "a")  # noise and dropout on: their RNG must resume too
    part = train_lincir(clip, CAPTIONS, SMALL, tmp_path / "b", until_step=7)
    assert part.steps == 7
    resumed = train_lincir(clip, CAPTIONS, SMALL, tmp_path / "b")
    assert resumed.steps == 12
    for (name, a), b in zip(straight.phi.state_dict().items(), resumed.phi.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r.split(",")[0] for r in resumed.log_csv.read_text().splitlines()[1:]] == [str(i) for i in range(1, 13)]


def test_a_checkpoint_of_other_settings_is_refused_unless_restart_is_asked(clip, tmp_path):
    train_lincir(clip, CAPTIONS, SMALL, tmp_path / "run", until_step=5)
    other = LinCIRConfig(**{**vars(SMALL), "lr": 1e-4})
    with pytest.raises(StalePhiCheckpoint, match=r"\['lr'\]"):
        train_lincir(clip, CAPTIONS, other, tmp_path / "run")
    assert train_lincir(clip, CAPTIONS, other, tmp_path / "run", restart_on_change=True).steps == 12


@pytest.mark.slow
def test_the_pipeline_trains_lincir_without_any_image(clip, tmp_path, monkeypatch):
    """Language only: the stage reads the list's captions; every image file is gone and none is opened."""
    import shutil

    from PIL import Image

    from p2w_lib.app import training, training_data

    p = tiny_world(tmp_path, monkeypatch)
    shutil.rmtree(p.world_dir / "cc3m" / "images")
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("LinCIR training opened an image"))
    run = training.train_seed(p, "lincir", 0, clip=clip)
    assert run.steps == p.lincir.steps and run.checkpoint.is_file()
    assert len(training_data.training_captions(p)) == len(training_data.training_images(p)) > p.lincir.batch_size


# -- checkpoints: ours and the official release format ----------------------------------------------


def test_an_official_phi_file_loads_and_a_foreign_clip_is_refused(clip, clip_seed1, tmp_path):
    shape = phi_shape(clip, LinCIRConfig(hidden_mult=2))
    phi = Phi(shape)
    # The official keys: SEARLE's phi.py, which LinCIR copies (Linear, GELU, Dropout) x 2 + Linear.
    assert list(phi.state_dict()) == [f"layers.{i}.{w}" for i in (0, 3, 6) for w in ("weight", "bias")]
    official = tmp_path / "phi_latest.pt"
    torch.save({"epoch": 3, "Phi": {f"module.{k}": v for k, v in phi.state_dict().items()}}, official)
    loaded = load_phi(official, clip)
    x = torch.randn(3, clip.embed_dim)
    assert torch.equal(loaded(x), phi.eval()(x)) and not loaded.training

    ours = train_lincir(clip, CAPTIONS, SMALL, tmp_path / "run").checkpoint
    with pytest.raises(CheckpointError, match="phi was trained on CLIP"):
        load_phi(ours, clip_seed1)
    torch.save(
        {"Phi": {k: v for k, v in phi.state_dict().items() if not k.startswith("layers.6")}}, tmp_path / "cut.pt"
    )
    with pytest.raises(CheckpointError, match="not a SEARLE/LinCIR phi state dict"):
        load_phi(tmp_path / "cut.pt", clip)


def test_the_pipeline_scores_an_official_lincir_file_when_eval_names_it(clip, tmp_path, monkeypatch):
    """eval.lincir_checkpoint: the released phi stands in for a trained one; switched off, LinCIR is left out."""
    from dataclasses import replace
    from pathlib import Path

    from p2w_lib.app import models, profile

    phi = Phi(phi_shape(clip, LinCIRConfig(hidden_mult=1)))
    torch.save({"epoch": 1, "Phi": phi.state_dict()}, tmp_path / "lincir_large.pt")
    p = profile.load_profile(Path(__file__).resolve().parents[1] / "params.yaml", "tiny")
    p = p.with_sections(
        eval=replace(p.eval, lincir_checkpoint=str(tmp_path / "lincir_large.pt")),
        searle=replace(p.searle, enabled=False),
        combiner=replace(p.combiner, fashion_iq=False, cirr=False),
    )
    p = replace(p, eval=replace(p.eval, searle_oti=False))
    monkeypatch.setattr(models, "mapper_for", lambda *a: "pic2word's mapper")
    mappers = models.token_mappers(p, 0, clip)
    x = torch.randn(2, clip.embed_dim)
    assert mappers["pic2word"] == "pic2word's mapper" and torch.equal(mappers["lincir"](x), phi.eval()(x))
    off = p.with_sections(lincir=replace(p.lincir, enabled=False))
    assert list(models.token_mappers(off, 0, clip)) == ["pic2word"]
