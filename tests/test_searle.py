"""SEARLE: the concept substitute, OTI and the distilled phi, each against a slow reference written
from the original's definition (miccunifi/SEARLE), plus training (learns, resumes exactly) and
the pipeline's switch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from p2w_lib.clip.composed import PLACEHOLDER
from p2w_lib.methods.phi import Phi, PhiShape
from p2w_lib.methods.phi_runs import StalePhiCheckpoint, load_phi
from p2w_lib.methods.searle.concepts import (
    TEMPLATES,
    concept_embeddings,
    concept_phrases,
    content_words,
    mask_concept,
    top_concepts,
)
from p2w_lib.methods.searle.config import SEARLEConfig
from p2w_lib.methods.searle.oti import Draw, draw, invert, oti_loss, template_tokens
from p2w_lib.methods.searle.train import (
    distillation_loss,
    draw_phrases,
    searle_phi_loss,
    train_searle,
)
from tests.conftest import tiny_world
from tests.text_reference import first_only_encode, swapped_embedding_encode

CAPTIONS = [
    "a photo of a red dress",
    "a red car on the road",
    "a sketch of a small red house",
    "the house by the lake",
    "a dress with long sleeves",
    "a small dog and a small cat",
    "a cat on the red sofa",
    "an old house",
    "a dog in the snow",
    "a car near a house",
    "the lake at night",
    "two dogs and a car",
]


@pytest.fixture(scope="module")
def phrases(clip):
    return concept_phrases(clip, CAPTIONS, min_count=2, per_concept=3)


# -- concepts: the offline substitute ----------------------------------------------------------------


def test_concepts_are_content_words_that_enough_captions_use(phrases):
    assert phrases.concepts == ["car", "cat", "dog", "dress", "house", "lake", "red", "small"]  # no determiner
    assert content_words("the cat is on a mat") == ["cat", "mat"]
    for c, o, n in zip(phrases.concepts, phrases.offset.tolist(), phrases.count.tolist()):
        assert 1 <= n <= 3
        assert all(c in content_words(p) for p in phrases.phrases[o : o + n])


def test_masking_replaces_whole_words_first_or_every_occurrence():
    assert mask_concept("a small dog and a small cat", "small", first_only=True) == "a * dog and a small cat"
    assert mask_concept("a small dog and a small cat", "small", first_only=False) == "a * dog and a * cat"
    assert mask_concept("a reddish red car", "red", first_only=False) == "a reddish * car"


def test_a_phrase_whose_concept_is_cut_by_the_context_is_dropped(clip):
    long = "a " + " ".join(["big"] * 90) + " zebra"
    ph = concept_phrases(clip, [long, "a zebra", "the zebra"], min_count=2, per_concept=5)
    zebra = ph.concepts.index("zebra")
    assert long not in ph.phrases[ph.offset[zebra] : ph.offset[zebra] + ph.count[zebra]]
    assert ph.first.star.any(dim=1).all() and ph.every.star.any(dim=1).all()


def test_concept_embeddings_average_the_templates_and_top_concepts_rank_by_cosine(clip):
    concepts = ["cat", "dog", "house"]
    feats = concept_embeddings(clip, concepts)
    for row, c in zip(feats, concepts):
        ref = F.normalize(
            F.normalize(clip.encode_text([t.format(c) for t in TEMPLATES], normalize=False), dim=-1).mean(0), dim=0
        )
        assert torch.allclose(row, ref, atol=1e-5)
    images = torch.randn(5, clip.embed_dim)
    top = top_concepts(images, feats, k=2)
    for img, row in zip(images, top):
        sims = [float(F.cosine_similarity(img, f, dim=0)) for f in feats]
        assert row.tolist() == sorted(range(3), key=lambda i: -sims[i])[:2]


def test_oti_draws_are_uniform_over_each_images_phrases(phrases):
    # Image 0 has concepts {dress, small}; the original flattens their phrases and picks one uniformly.
    concepts_of = torch.tensor([[phrases.concepts.index("dress"), phrases.concepts.index("small")]])
    gen = torch.Generator().manual_seed(0)
    rows = torch.cat([draw(concepts_of, phrases, len(TEMPLATES), gen).phrase for _ in range(3000)])
    allowed = {
        r
        for c in concepts_of[0].tolist()
        for r in range(int(phrases.offset[c]), int(phrases.offset[c] + phrases.count[c]))
    }
    assert set(rows.tolist()) == allowed
    expected = 3000 / len(allowed)
    assert all(abs((rows == r).sum().item() - expected) < 5 * math.sqrt(expected) for r in allowed)


# -- the losses, against references from the definition ---------------------------------------------


def test_distillation_loss_equals_the_originals_definition():
    torch.manual_seed(0)
    a, b, tau = torch.randn(6, 16), torch.randn(6, 16), 0.25
    v1, v2 = F.normalize(a, dim=1), F.normalize(b, dim=1)
    joint = torch.cat([v1, v2])
    num = torch.exp(torch.cat([(v1 * v2).sum(1), (v1 * v2).sum(1)]) / tau)  # each token's partner
    den = torch.stack([sum(torch.exp(joint[i] @ joint[j] / tau) for j in range(12) if j != i) for i in range(12)])
    ref = -torch.log(num / den).mean()
    assert torch.allclose(distillation_loss(a, b, tau), ref, rtol=1e-5)


def test_oti_loss_equals_the_reference_built_from_the_definition(clip, phrases):
    torch.manual_seed(1)
    tokens = torch.randn(3, clip.token_dim) * 0.02
    images = torch.randn(3, clip.embed_dim)
    d = Draw(template=torch.tensor([0, 4, 10]), phrase=torch.tensor([0, 5, 9]))
    loss = oti_loss(clip, tokens, images, d, template_tokens(clip), phrases, 1.0, 0.5)

    owner = [max(c for c in range(len(phrases.concepts)) if phrases.offset[c] <= r) for r in d.phrase.tolist()]
    with torch.no_grad():
        t = swapped_embedding_encode(clip, [TEMPLATES[i].format(PLACEHOLDER) for i in d.template.tolist()], tokens)
        texts = [phrases.phrases[r] for r in d.phrase.tolist()]
        masked = [mask_concept(p, phrases.concepts[o], first_only=True) for p, o in zip(texts, owner)]
        r = swapped_embedding_encode(clip, masked, tokens)
        p = torch.stack([clip.model.encode_text(clip.tokenizer([x]), normalize=False)[0] for x in texts])
    ref = ((1 - F.cosine_similarity(t, images)).mean() + 0.5 * (1 - F.cosine_similarity(r, p)).mean()) / 1.5
    assert torch.allclose(loss, ref, rtol=1e-4, atol=1e-6)


def test_phi_loss_equals_the_reference_built_from_the_definition(clip, phrases):
    torch.manual_seed(2)
    phi = Phi(PhiShape(clip.embed_dim, 32, clip.token_dim, 0.0)).eval()
    feats, oti = torch.randn(4, clip.embed_dim), torch.randn(4, clip.token_dim)
    small = phrases.concepts.index("small")
    twice = [
        r
        for r in range(int(phrases.offset[small]), int(phrases.offset[small] + phrases.count[small]))
        if phrases.phrases[r] == "a small dog and a small cat"
    ]
    rows = torch.tensor(twice * 2 + [0, 3])  # "small ... small": both occurrences become `*`, the token at the first
    cfg = SEARLEConfig(lambda_distil=1.0, lambda_reg=0.75, temperature=0.25)
    loss = searle_phi_loss(clip, phi, feats, oti, rows, phrases, cfg)

    owner = [max(c for c in range(len(phrases.concepts)) if phrases.offset[c] <= r) for r in rows.tolist()]
    texts = [phrases.phrases[r] for r in rows.tolist()]
    masked = [mask_concept(p, phrases.concepts[o], first_only=False) for p, o in zip(texts, owner)]
    assert any(m.count(PLACEHOLDER) > 1 for m in masked)
    with torch.no_grad():
        tokens = phi(feats)
        r = first_only_encode(clip, masked, tokens)
        p = torch.stack([clip.model.encode_text(clip.tokenizer([x]), normalize=False)[0] for x in texts])
        ref = distillation_loss(oti, tokens, 0.25) + 0.75 * (1 - F.cosine_similarity(r, p)).mean()
    assert torch.allclose(loss.total, ref, rtol=1e-4, atol=1e-6)


def test_phi_phrases_come_from_the_images_top_concepts(phrases):
    concepts_of = torch.tensor([[0, 1], [2, 3]])
    rows = draw_phrases(concepts_of.repeat(500, 1), phrases, torch.Generator().manual_seed(0)).view(500, 2)
    for col, concepts in enumerate(([0, 1], [2, 3])):
        lo, hi = int(phrases.offset[concepts[0]]), int(phrases.offset[concepts[1]] + phrases.count[concepts[1]])
        assert rows[:, col].min() >= lo and rows[:, col].max() < hi and len(set(rows[:, col].tolist())) == hi - lo


# -- OTI and training --------------------------------------------------------------------------------

OTI = SEARLEConfig(
    oti_steps=30,
    oti_batch_size=4,
    oti_lr=2e-2,
    oti_top_k=2,
    batch_size=4,
    steps=12,
    lr=1e-3,
    hidden_mult=1,
    checkpoint_every=5,
    top_k=3,
)


def test_oti_makes_the_templates_read_as_the_image(clip, phrases):
    images = torch.randn(6, clip.embed_dim)
    concepts_of = top_concepts(images, concept_embeddings(clip, phrases.concepts), 2)
    tokens = invert(clip, images, concepts_of, phrases, OTI, seed=0)
    assert tokens.shape == (6, clip.token_dim)
    templates = template_tokens(clip)

    def template_similarity(tok):  # mean cosine of "a photo of a *" (template 0) with the image
        with torch.no_grad():
            d = Draw(template=torch.zeros(6, dtype=torch.long), phrase=torch.zeros(6, dtype=torch.long))
            return 1 - oti_loss(clip, tok, images, d, templates, phrases, 1.0, 0.0).item()

    start = torch.empty_like(tokens).normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    assert template_similarity(tokens) > template_similarity(start) + 0.2


def test_a_stopped_inversion_resumes_to_the_same_tokens(clip, phrases, tmp_path):
    images = torch.randn(10, clip.embed_dim)
    concepts_of = top_concepts(images, concept_embeddings(clip, phrases.concepts), 2)
    cfg = SEARLEConfig(**{**vars(OTI), "oti_steps": 4})
    straight = invert(clip, images, concepts_of, phrases, cfg, seed=3)
    store = tmp_path / "oti.pt"
    invert(clip, images[:4], concepts_of[:4], phrases, cfg, seed=3, store=store, identity={"data": "x"})  # batch 0 only
    resumed = invert(clip, images, concepts_of, phrases, cfg, seed=3, store=store, identity={"data": "x"}, save_every=1)
    assert torch.equal(straight, resumed)
    other = invert(clip, images, concepts_of, phrases, cfg, seed=3, store=store, identity={"data": "y"})  # other images
    assert torch.equal(other, straight)  # recomputed, not read back


def test_training_learns_resumes_and_refuses_another_runs_checkpoint(clip, phrases, tmp_path):
    images = torch.randn(12, clip.embed_dim)
    paths = [f"img{i}.png" for i in range(12)]
    cfg = SEARLEConfig(**{**vars(OTI), "steps": 40, "dropout": 0.0})
    rows = train_searle(clip, images, paths, phrases, cfg, tmp_path / "learn").log_csv.read_text().splitlines()[1:]
    losses = [float(r.split(",")[2]) for r in rows]
    assert len(losses) == 40 and sum(losses[-5:]) < 0.8 * sum(losses[:5])

    straight = train_searle(clip, images, paths, phrases, OTI, tmp_path / "a")  # dropout on: its RNG must resume too
    assert train_searle(clip, images, paths, phrases, OTI, tmp_path / "b", until_step=7).steps == 7
    resumed = train_searle(clip, images, paths, phrases, OTI, tmp_path / "b")
    for (name, a), b in zip(straight.phi.state_dict().items(), resumed.phi.state_dict().values()):
        assert torch.equal(a, b), name
    other = SEARLEConfig(**{**vars(OTI), "temperature": 0.5})
    with pytest.raises(StalePhiCheckpoint, match=r"\['temperature'\]"):
        train_searle(clip, images, paths, phrases, other, tmp_path / "b")
    loaded = load_phi(resumed.checkpoint, clip)
    x = torch.randn(2, clip.embed_dim)
    assert torch.equal(loaded(x), resumed.phi(x))


@pytest.mark.slow
def test_the_pipeline_trains_searle_on_the_tiny_world_and_can_switch_it_off(clip, tmp_path, monkeypatch):
    from dataclasses import replace

    from p2w_lib.app import models, training, training_data

    p = tiny_world(tmp_path, monkeypatch)
    images = training_data.searle_images(p)
    assert len(images) == p.searle.oti_images and set(images) < set(training_data.training_images(p))
    run = training.train_seed(p, "searle", 0, clip=clip)
    assert run.steps == p.searle.steps and run.checkpoint.is_file() and run.oti_tokens.is_file()
    monkeypatch.setattr(models, "mapper_for", lambda *a: "pic2word's mapper")
    on = p.with_sections(
        lincir=replace(p.lincir, enabled=False), combiner=replace(p.combiner, fashion_iq=False, cirr=False)
    )
    assert list(models.token_mappers(on, 0, clip)) == ["pic2word", "searle", "searle_oti"]
    off = on.with_sections(searle=replace(p.searle, enabled=False))
    assert training.train_searles(off) == {} and (p.models_dir / "searle" / "SWITCHED_OFF.txt").is_file()
    assert list(models.token_mappers(off, 0, clip)) == ["pic2word", "searle_oti"]  # needs no phi: eval's switch
    assert list(models.token_mappers(replace(off, eval=replace(off.eval, searle_oti=False)), 0, clip)) == ["pic2word"]
    monkeypatch.setattr(training, "train_seed", lambda *a: run)
    assert training.train_searles(on) == {0: run}  # switched back on: the note goes
    assert not (p.models_dir / "searle" / "SWITCHED_OFF.txt").exists()


@pytest.mark.slow
def test_the_pipeline_scores_an_official_searle_file_when_eval_names_it(clip, tmp_path, monkeypatch):
    """eval.searle_checkpoint: the released phi (SEARLE's `{"epoch", "Phi"}` file) stands in for a trained one."""
    from dataclasses import replace
    from pathlib import Path

    from p2w_lib.app import models, profile

    phi = Phi(PhiShape(clip.embed_dim, 4 * clip.embed_dim, clip.token_dim, 0.5))
    torch.save({"epoch": 100, "Phi": phi.state_dict()}, tmp_path / "SEARLE_ViTL14.pt")
    p = profile.load_profile(Path(__file__).resolve().parents[1] / "params.yaml", "tiny")
    p = p.with_sections(
        eval=replace(p.eval, searle_checkpoint=str(tmp_path / "SEARLE_ViTL14.pt")),
        lincir=replace(p.lincir, enabled=False),
        combiner=replace(p.combiner, fashion_iq=False, cirr=False),
    )
    p = replace(p, eval=replace(p.eval, searle_oti=False))
    monkeypatch.setattr(models, "mapper_for", lambda *a: "pic2word's mapper")
    mappers = models.token_mappers(p, 0, clip)
    x = torch.randn(2, clip.embed_dim)
    assert list(mappers) == ["pic2word", "searle"] and torch.equal(mappers["searle"](x), phi.eval()(x))


@pytest.mark.slow
def test_the_settings_ablation_runs_end_to_end_on_the_tiny_world(clip, tmp_path, monkeypatch):
    """`python -m p2w_lib.tools.ablations.searle_settings` on the tiny profile: its images are not the pipeline's,
    its run lands under runs/, and its scores are the protocols' on the same networks."""
    import argparse

    from p2w_lib.app import training_data
    from p2w_lib.app.benchmarks import BENCHMARKS, EvalContext
    from p2w_lib.methods.phi_runs import load_phi
    from p2w_lib.methods.pic2word.network import Mapper
    from p2w_lib.tools.ablations import searle_settings as searle_ablation

    p = tiny_world(tmp_path, monkeypatch)
    n = p.searle.oti_images
    assert training_data.searle_images(p, subset_seed=1) != training_data.searle_images(
        p
    )  # the ablation's draw is not the pipeline's
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=16).eval()
    monkeypatch.setattr(searle_ablation, "clip_for", lambda *a: clip)
    monkeypatch.setattr(searle_ablation, "mapper_for", lambda *a: mapper)
    args = argparse.Namespace(
        params="params.yaml",
        profile="tiny",
        images=n,
        oti_steps=3,
        ema_decay=0.9,
        steps=4,
        lr=1e-3,
        seed=0,
        subset_seed=1,
    )
    row = searle_ablation.run(args)
    run = tmp_path / "runs" / "searle_ablation" / row["setting"]
    phi = load_phi(run / "phi.pt", clip)
    ctx = EvalContext(profile=p, seed=0, clip=clip, mapper={"pic2word": mapper, "searle": phi})
    expected = BENCHMARKS["fashion_iq"].evaluate(ctx)["methods"]
    for method in searle_ablation.SHOWN:
        assert row[f"fashion_iq R@10 {method}"] == round(expected[method]["R@10"], 2)
    assert {f"domain_conversion R@10 {m}" for m in searle_ablation.SHOWN} <= set(row)


# -- SEARLE-OTI: the inversion at query time -----------------------------------------------------------


def test_query_tokens_are_the_inversion_of_each_distinct_reference_image(clip, phrases):
    """A reference listed in several queries is inverted once, and its token is what oti.invert makes
    of the distinct images in order of first appearance (same batches, same seeded draws)."""
    from p2w_lib.methods.searle_oti import OTIQueryTokens

    cfg = SEARLEConfig(oti_steps=3, oti_batch_size=2, oti_top_k=3)
    distinct = torch.randn(3, clip.embed_dim)
    listed = distinct[[1, 0, 1, 2, 0]]  # [5, D]: references as queries list them
    network = OTIQueryTokens(clip, phrases, cfg, seed=4)
    with torch.no_grad():  # as the protocols call it
        tokens = network(listed)  # [5, W]
    in_order = distinct[[1, 0, 2]]
    concepts_of = top_concepts(in_order, concept_embeddings(clip, phrases.concepts), cfg.oti_top_k)
    expected = invert(clip, in_order, concepts_of, phrases, cfg, seed=4)  # [3, W]
    assert torch.allclose(tokens, expected[[0, 1, 0, 2, 1]], atol=1e-6)
    assert network.batches == 2  # 3 distinct images in batches of 2; nothing inverted twice
    again = network(distinct[[2]])
    assert torch.equal(again[0], tokens[3]) and network.batches == 2


def test_query_tokens_of_later_calls_continue_the_batch_numbering(clip, phrases):
    """A protocol composes one domain at a time: images new to a later call get the draws that
    batch would get in one long inversion, so splitting the queries changes no token."""
    from p2w_lib.methods.searle_oti import OTIQueryTokens

    cfg = SEARLEConfig(oti_steps=3, oti_batch_size=2, oti_top_k=3)
    images = torch.randn(4, clip.embed_dim)
    network = OTIQueryTokens(clip, phrases, cfg, seed=5)
    with torch.no_grad():
        tokens = torch.cat([network(images[:2]), network(images[2:])])  # [4, W], two calls
    concepts_of = top_concepts(images, concept_embeddings(clip, phrases.concepts), cfg.oti_top_k)
    expected = invert(clip, images, concepts_of, phrases, cfg, seed=5)  # [4, W], one call
    assert torch.allclose(tokens, expected, atol=1e-6) and network.batches == 2


# -- SEARLE-OTI's own stage: the token store the evaluation stages read ------------------------------


def _tiny_oti_profile(tmp_path, monkeypatch, clip):
    from dataclasses import replace

    from p2w_lib.app import models

    p = tiny_world(tmp_path, monkeypatch)
    p = p.with_sections(
        lincir=replace(p.lincir, enabled=False),
        searle=replace(p.searle, enabled=False),
        combiner=replace(p.combiner, fashion_iq=False, cirr=False),
    )
    monkeypatch.setattr(models, "clip_for", lambda *a: clip)
    monkeypatch.setattr(models, "mapper_for", lambda *a: None)
    return p


def _searle_oti_scores(p, clip, oti) -> dict:
    """SEARLE-OTI's scores on the profile's evaluated benchmarks, in stage order, with network `oti`."""
    from p2w_lib.app.benchmarks import BENCHMARKS, EvalContext

    return {
        name: BENCHMARKS[name].evaluate(EvalContext(p, 0, clip, {"searle_oti": oti}))["methods"]["searle_oti"]
        for name in ("domain_conversion", "fashion_iq")
    }


@pytest.mark.slow
def test_the_searle_oti_stage_stores_the_tokens_that_evaluation_reads_and_inverts_nothing_more(
    clip, tmp_path, monkeypatch, caplog
):
    from p2w_lib.app import evaluation, models
    from p2w_lib.training.checkpoint import read_checkpoint

    p = _tiny_oti_profile(tmp_path, monkeypatch, clip)
    inverted = evaluation.invert_query_images(p)
    saved = read_checkpoint(p.oti_store_path(0))
    assert inverted == {0: len(saved["tokens"])} and len(saved["tokens"]) > 0
    # Evaluating from the store scores what one object inverting as it goes (the same order) scores.
    as_it_goes = _searle_oti_scores(p, clip, models.oti_query_tokens(p, 0, clip))
    from_store = models.token_mappers(p, 0, clip)["searle_oti"]
    with caplog.at_level("WARNING"):
        assert _searle_oti_scores(p, clip, from_store) == as_it_goes
    assert from_store.batches == saved["batches"] and "not in" not in caplog.text  # nothing inverted at evaluation
    assert evaluation.invert_query_images(p) == {0: 0}  # a repeated (or resumed) stage inverts only what is missing


@pytest.mark.slow
def test_a_stale_searle_oti_store_is_refused_at_evaluation_and_redone_by_the_stage(clip, tmp_path, monkeypatch):
    from dataclasses import replace

    from p2w_lib.app import evaluation, models
    from p2w_lib.training.checkpoint import CheckpointError, read_checkpoint

    p = _tiny_oti_profile(tmp_path, monkeypatch, clip)
    evaluation.invert_query_images(p)
    other = p.with_sections(searle=replace(p.searle, oti_steps=p.searle.oti_steps + 1))
    with pytest.raises(CheckpointError, match="re-run the searle_oti stage"):
        models.token_mappers(other, 0, clip)
    n = len(read_checkpoint(p.oti_store_path(0))["tokens"])
    assert evaluation.invert_query_images(other) == {0: n}  # starts over under the new settings
    assert "searle_oti" in models.token_mappers(other, 0, clip)


@pytest.mark.slow
def test_the_searle_oti_stage_switched_off_leaves_a_note_and_evaluation_leaves_the_method_out(
    clip, tmp_path, monkeypatch
):
    from dataclasses import replace

    from p2w_lib.app import evaluation, models

    p = _tiny_oti_profile(tmp_path, monkeypatch, clip)
    off = replace(p, eval=replace(p.eval, searle_oti=False))
    assert evaluation.invert_query_images(off) == {}
    assert (p.models_dir / "searle_oti" / "SWITCHED_OFF.txt").is_file() and not p.oti_store_path(0).exists()
    assert "searle_oti" not in models.token_mappers(off, 0, clip)


def test_own_image_first_matches_a_one_query_at_a_time_reference(clip):
    """oti_queries.own_image_first against the obvious loop: each token's prompt encoded alone, its
    cosine with every image, and whether the largest is its own."""
    from p2w_lib.clip.composed import encode_composed_tokens, tokenize_prompts
    from p2w_lib.methods.searle_oti import own_image_first

    torch.manual_seed(0)
    tokens = torch.randn(7, clip.token_dim) * 0.02
    tokens[5] = tokens[3]  # two equal tokens: at most one of them can find its own image
    with torch.no_grad():
        queries = [
            encode_composed_tokens(
                clip.model, tokenize_prompts(clip.model, clip.tokenizer, ["a photo of *"]), tokens[i : i + 1]
            )[0]
            for i in range(7)
        ]  # one at a time, [D] each
    images = torch.randn(7, clip.embed_dim)
    images[:4] = 3 * torch.stack(queries[:4])  # unnormalised images that match their tokens' prompts exactly
    images[5] = 3 * queries[5]
    hits = sum(int((queries[i] @ F.normalize(images, dim=-1).T).argmax() == i) for i in range(7))
    assert hits == 4  # 0-3 find their own image; 5 ties with 3 (same token, same image) and the tie goes to 3
    assert own_image_first(clip, images, tokens, batch_size=3) == pytest.approx(100 * hits / 7)
