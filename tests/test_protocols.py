"""Benchmark protocols against slow per-query references, and the loaders against the real files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from p2w_lib import Mapper, encode_composed
from p2w_lib.data.cc3m import read_image_caption_list
from p2w_lib.data.errors import DataFormatError
from p2w_lib.data.fashion_iq import CATEGORIES, read_split, read_triplets
from p2w_lib.data.imagenet_r import QUERY_LIST, TARGET_LIST, read_label_list
from p2w_lib.data.images import load_rgb
from p2w_lib.demo.world import RENDITIONS
from p2w_lib.protocols.domain_conversion import evaluate_domain_conversion
from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq
from tests.conftest import SHARED
from tests.slerp_reference import slerp_reference
from tests.test_demo_world import (
    world,  # noqa: F401  (session fixture: the tiny demo world)
)

SCHEMA_METHODS = {"image_only", "text_only", "image_text", "slerp", "pic2word"}


@pytest.fixture(scope="module")
def mapper(clip):
    torch.manual_seed(0)
    return Mapper(clip.embed_dim, clip.token_dim, hidden_dim=32).eval()


def embed(clip, paths):
    return clip.encode_image(torch.stack([clip.preprocess(load_rgb(p)) for p in paths]))  # [N, D]


def ranking(query: torch.Tensor, gallery: torch.Tensor) -> list[int]:
    return torch.argsort(gallery @ query, descending=True, stable=True).tolist()


def test_domain_conversion_matches_slow_reference(world, clip, mapper):  # noqa: F811
    result = evaluate_domain_conversion(clip, mapper, world, RENDITIONS, ks=(10, 50), profile="tiny")
    queries, targets = read_label_list(world / QUERY_LIST), read_label_list(world / TARGET_LIST)
    gallery = F.normalize(embed(clip, [world / p for p, _ in targets]), dim=-1)
    refs = embed(clip, [world / p for p, _ in queries])
    for p, domain in enumerate(RENDITIONS):
        prompt = f"a {domain} of *"
        text = clip.encode_text([f"a {domain} of"], normalize=True)[0]
        sums = {m: {10: 0.0, 50: 0.0} for m in SCHEMA_METHODS}
        for ref, (_, label) in zip(refs, queries):
            relevant = {j for j, (_, t) in enumerate(targets) if t == label + 1000 * p}
            image = F.normalize(ref, dim=0)
            composed = encode_composed(clip.model, clip.tokenizer, [prompt], mapper(ref[None]))[0]
            per_method = {
                "image_only": image,
                "text_only": text,
                "image_text": F.normalize(image + text, dim=0),
                "slerp": slerp_reference(image, text, 0.8),
                "pic2word": composed,
            }
            for method, q in per_method.items():
                ranked = ranking(q, gallery)
                for k in (10, 50):
                    sums[method][k] += len(relevant & set(ranked[:k])) / (len(relevant) + 1e-5)
        for method in SCHEMA_METHODS:
            got = result["methods"][method]["per_domain"][domain]
            for k in (10, 50):
                assert got[f"R@{k}"] == pytest.approx(100 * sums[method][k] / len(queries), abs=1e-3), (
                    domain,
                    method,
                    k,
                )
    assert result["metric"] == "true_recall" and result["n_queries"] == len(queries)


def test_fashion_iq_matches_slow_reference(world, clip, mapper):  # noqa: F811
    root = world / "fashion-iq"
    result = evaluate_fashion_iq(clip, mapper, root, ks=(10, 50), profile="tiny")
    for category in CATEGORIES:
        ids = read_split(root, category)
        gallery = F.normalize(embed(clip, [root / "images" / f"{i}.png" for i in ids]), dim=-1)
        hits = {m: {10: 0, 50: 0} for m in SCHEMA_METHODS}
        triplets = read_triplets(root, category)
        for t in triplets:
            ref = embed(clip, [root / "images" / f"{t.candidate}.png"])[0]
            c1, c2 = t.captions
            prompt = f"a photo of * , {c2} and {c1}"
            text = clip.encode_text([prompt], normalize=True)[0]  # official baselines: the prompt as text, `*` included
            image = F.normalize(ref, dim=0)
            composed = encode_composed(clip.model, clip.tokenizer, [prompt], mapper(ref[None]))[0]
            per_method = {
                "image_only": image,
                "text_only": text,
                "image_text": F.normalize(image + text, dim=0),
                "slerp": slerp_reference(image, text, 0.8),
                "pic2word": composed,
            }
            for method, q in per_method.items():
                ranked = ranking(q, gallery)
                for k in (10, 50):
                    hits[method][k] += ids.index(t.target) in ranked[:k]
        for method in SCHEMA_METHODS:
            got = result["methods"][method]["per_category"][category]
            for k in (10, 50):
                assert got[f"R@{k}"] == pytest.approx(100 * hits[method][k] / len(triplets), abs=1e-3)
    avg = result["methods"]["pic2word"]["R@10"]
    assert avg == pytest.approx(sum(result["methods"]["pic2word"]["per_category"][c]["R@10"] for c in CATEGORIES) / 3)


def test_fashion_iq_scores_the_training_free_methods_alone(world, clip):  # noqa: F811
    """Called without any network (a training-free comparison), it scores what it can and claims no margin."""
    result = evaluate_fashion_iq(clip, None, world / "fashion-iq", ks=(10,), profile="tiny")
    assert set(result["methods"]) == {"image_only", "text_only", "image_text", "slerp"}
    assert result["paired_difference"] == {}


def test_domain_conversion_keeps_queries_whose_class_has_no_rendition(world, clip, mapper, tmp_path):  # noqa: F811
    """As on Pic2Word's real lists: drop every rendition of one class in one domain. The official
    metric scores those queries 0 and keeps them in the mean; `queries="evaluable"` leaves them out."""
    root = tmp_path / "world"
    shutil.copytree(world, root, ignore=shutil.ignore_patterns("cc3m", "fashion-iq"))
    targets = read_label_list(root / TARGET_LIST)
    queries = read_label_list(root / QUERY_LIST)
    gone_class, gone_domain = queries[0][1], 1
    kept = [(p, label) for p, label in targets if label != 1000 * gone_domain + gone_class]
    (root / TARGET_LIST).write_text("".join(f"{p} {label} \n" for p, label in kept))
    n_gone = sum(label == gone_class for _, label in queries)
    official = evaluate_domain_conversion(clip, mapper, root, RENDITIONS, ks=(10,))
    evaluable = evaluate_domain_conversion(clip, mapper, root, RENDITIONS, ks=(10,), queries="evaluable")
    domain = RENDITIONS[gone_domain]
    assert official["queries"] == "all" and official["n_queries_without_relevant"][domain] == n_gone
    assert official["n_queries_without_relevant"][RENDITIONS[0]] == 0
    for method in SCHEMA_METHODS:
        all_q = official["methods"][method]["per_domain"][domain]["R@10"]
        only = evaluable["methods"][method]["per_domain"][domain]["R@10"]
        # the same per-query scores, averaged over len(queries) vs over the evaluable ones
        assert all_q == pytest.approx(only * (len(queries) - n_gone) / len(queries), abs=1e-3), method
        other = RENDITIONS[0]
        assert official["methods"][method]["per_domain"][other] == evaluable["methods"][method]["per_domain"][other]
    with pytest.raises(ValueError, match="choose from"):
        evaluate_domain_conversion(clip, mapper, root, RENDITIONS, queries="some")


def test_fashion_iq_counts_unevaluable_triplets(world, clip, mapper, tmp_path, caplog):  # noqa: F811
    root = tmp_path / "fiq"
    shutil.copytree(world / "fashion-iq", root)
    triplets = read_triplets(root, "dress")
    (root / "images" / f"{triplets[0].target}.png").unlink()  # a dead image link
    (root / "images" / f"{triplets[1].candidate}.png").write_bytes(b"not a png")  # a broken download
    result = evaluate_fashion_iq(clip, mapper, root, categories=("dress",), max_bad_fraction=0.5)
    counts = result["counts"]["dress"]
    # as in Fashion-IQ, an image can belong to several triplets: each one that uses a broken image is out
    broken = {triplets[0].target, triplets[1].candidate}
    lost = sum(t.candidate in broken or t.target in broken for t in triplets)
    assert lost >= 2 and counts["skipped"] == lost and counts["evaluable"] == len(triplets) - lost
    assert counts["gallery_missing"] == len(broken)
    assert f"{len(triplets) - lost} triplets evaluated, {lost} skipped" in caplog.text


def test_results_schema(world, clip, mapper):  # noqa: F811
    result = evaluate_domain_conversion(
        clip,
        mapper,
        world,
        RENDITIONS,
        profile="demo",
        seed=3,
        oracle_texts=json.loads((world / "oracle" / "domain_conversion.json").read_text()),
    )
    assert {"profile", "seed", "metric", "methods"} <= set(result) and result["seed"] == 3
    assert SCHEMA_METHODS | {"oracle_text"} == set(result["methods"])
    for scores in result["methods"].values():
        assert {"R@10", "R@50", "P@10", "per_domain"} <= set(scores)
        assert set(scores["per_domain"]) == set(RENDITIONS)


# -- the real annotation files (../shared/reference), parsed by the same loaders ------------

REFERENCE = SHARED / "reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is not present")


@needs_reference
def test_real_pic2word_imagenet_r_lists_parse():
    queries = read_label_list(REFERENCE / "pic2word-imagenet-r" / "imgnet_real_query.txt")
    targets = read_label_list(REFERENCE / "pic2word-imagenet-r" / "imgnet_targets.txt")
    assert len(queries) == 10_000 and len(targets) == 16_983
    domains = {label // 1000 for _, label in targets}
    assert domains == {0, 1, 2, 3, 6}
    classes_per_domain = [len({label % 1000 for _, label in targets if label // 1000 == d}) for d in range(4)]
    assert classes_per_domain == [153, 106, 144, 142]  # cartoon, origami, toy, sculpture: many queries have no target
    assert sum(label // 1000 != 6 for _, label in targets) == 6_983


@needs_reference
@pytest.mark.parametrize("category", CATEGORIES)
def test_real_fashion_iq_files_parse(category):
    triplets = read_triplets(REFERENCE / "fashion-iq", category)
    ids = set(read_split(REFERENCE / "fashion-iq", category))
    assert len(triplets) > 1000 and all(t.target in ids for t in triplets)


def test_malformed_files_are_clear_errors(tmp_path):
    bad_list = tmp_path / "list.txt"
    bad_list.write_text("imgnet/real/a.png 3\nimgnet/real/b.png three\n")
    with pytest.raises(DataFormatError, match=r"list.txt:2: expected 'relative/path label'"):
        read_label_list(bad_list)
    tsv = tmp_path / "cc3m.tsv"
    tsv.write_text("image\tcaption\nx.png\ta cat\n")
    with pytest.raises(DataFormatError, match="header 'filepath<TAB>title'"):
        read_image_caption_list(tsv)
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "cap.dress.val.json").write_text('[{"candidate": "a", "target": "b"}]')
    with pytest.raises(DataFormatError, match="entry 0"):
        read_triplets(tmp_path, "dress")
    with pytest.raises(FileNotFoundError, match="cap.shirt.val.json: missing Fashion-IQ caption file"):
        read_triplets(tmp_path, "shirt")
