"""CIRR, CIRCO, COCO objects and the SEARLE Fashion-IQ variant against slow per-query references
on fixtures in the real formats; the submission files; the real CIRCO annotations."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from p2w_lib import Mapper, encode_composed
from p2w_lib.datasets.circo import read_queries as read_circo
from p2w_lib.datasets.cirr import read_image_split, read_queries as read_cirr
from p2w_lib.datasets.coco import build_object_queries, query_crop_path, read_queries as read_coco
from p2w_lib.datasets.errors import DataFormatError
from p2w_lib.datasets.fashion_iq import read_split, read_triplets
from p2w_lib.images import load_rgb
from p2w_lib.protocols import circo, cirr, coco_objects
from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq, searle_query_texts
from tests import paper_fixtures as fx
from tests.conftest import SHARED


@pytest.fixture(scope="module")
def mapper(clip):
    torch.manual_seed(0)
    return Mapper(clip.embed_dim, clip.token_dim, hidden_dim=32).eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    fx.fashion_iq(root)
    fx.cirr(root)
    fx.circo(root)
    fx.coco(root)
    build_object_queries(root / "coco", root / "prepared" / "coco", seed=0)
    return root


def embed(clip, paths):
    return clip.encode_image(torch.stack([clip.preprocess(load_rgb(p)) for p in paths]))  # [N, D] unnormalised


def per_method(clip, mapper, ref, prompt, text):
    """The four query embeddings of one query, written out plainly."""
    image = F.normalize(ref, dim=0)
    t = clip.encode_text([text], normalize=True)[0]
    composed = encode_composed(clip.model, clip.tokenizer, [prompt], mapper(ref[None]))[0]
    return {"image_only": image, "text_only": t, "image_text": F.normalize(image + t, dim=0), "pic2word": composed}


def ranked(query, gallery, names, drop=None):
    order = torch.argsort(gallery @ query, descending=True, stable=True).tolist()
    return [names[i] for i in order if names[i] != drop]


def test_cirr_matches_slow_reference(data, clip, mapper):
    result = cirr.evaluate_cirr(clip, mapper, data / "cirr", ks=(1, 5, 10))
    files = read_image_split(data / "cirr", "val")
    names = sorted(files)
    raw = embed(clip, [files[n] for n in names])
    gallery = F.normalize(raw, dim=-1)
    queries = read_cirr(data / "cirr", "val")
    expected = {m: {"R@1": 0, "R@5": 0, "R@10": 0, "Rs@1": 0, "Rs@2": 0, "Rs@3": 0} for m in result["methods"]}
    for q in queries:
        ref = raw[names.index(q.reference)]
        for method, vec in per_method(clip, mapper, ref, f"a photo of * , {q.caption}", q.caption).items():
            full = ranked(vec, gallery, names, drop=q.reference)
            subset = [n for n in full if n in q.members]
            for k in (1, 5, 10):
                expected[method][f"R@{k}"] += q.target in full[:k]
            for k in (1, 2, 3):
                expected[method][f"Rs@{k}"] += q.target in subset[:k]
    for method, scores in expected.items():
        for key, hits in scores.items():
            assert result["methods"][method][key] == pytest.approx(100 * hits / len(queries), abs=1e-3), (method, key)
    assert result["n_queries"] == 6 and result["n_gallery"] == 12


def test_cirr_test_submission_format(data, clip, mapper, tmp_path):
    paths = cirr.write_test_submission(clip, mapper, data / "cirr", tmp_path)
    recall, subset = (json.loads(paths[k].read_text()) for k in ("recall", "recall_subset"))
    assert recall["version"] == subset["version"] == "rc2"
    assert recall["metric"] == "recall" and subset["metric"] == "recall_subset"
    queries = {str(q.pairid): q for q in read_cirr(data / "cirr", "test1")}
    assert set(recall) - {"version", "metric"} == set(queries) == set(subset) - {"version", "metric"}
    for pairid, q in queries.items():
        assert len(recall[pairid]) == 7 and q.reference not in recall[pairid]  # 8 test1 images minus the reference
        assert len(subset[pairid]) == 3 and set(subset[pairid]) <= set(q.members) - {q.reference}


@pytest.mark.parametrize("drop", [None, 108])
def test_circo_matches_slow_reference(data, clip, mapper, tmp_path, drop):
    """AP@K divides by min(K, |GT|) of the annotation, also when a ground-truth image is unreadable."""
    root = data / "circo"
    if drop is not None:  # query 2's ground truth is 107, 108, 109: lose one image
        import shutil

        root = shutil.copytree(root, tmp_path / "circo")
        (root / "COCO2017_unlabeled" / "unlabeled2017" / f"{drop:012d}.jpg").unlink()
    result = circo.evaluate_circo(clip, mapper, root, ks=(5, 10), max_bad_fraction=0.1)
    assert result["n_ground_truth_missing"] == (drop is not None)
    ids = [i for i in range(100, 116) if i != drop]
    raw = embed(clip, [root / "COCO2017_unlabeled" / "unlabeled2017" / f"{i:012d}.jpg" for i in ids])
    gallery = F.normalize(raw, dim=-1)
    queries = [q for q in read_circo(root, "val") if set(q.ground_truth) & set(ids)]  # no readable GT: skipped
    assert result["n_queries_skipped"] == 5 - len(queries)
    sums = {m: {5: 0.0, 10: 0.0} for m in result["methods"]}
    for q in queries:
        ref = raw[ids.index(q.reference)]
        for method, vec in per_method(clip, mapper, ref, f"a photo of * , {q.caption}", q.caption).items():
            full = ranked(vec, gallery, ids)  # the reference stays in the gallery
            for k in (5, 10):
                hits, ap = 0, 0.0
                for rank, image in enumerate(full[:k], start=1):
                    if image in q.ground_truth:
                        hits += 1
                        ap += hits / rank
                sums[method][k] += ap / min(k, len(q.ground_truth))
    for method, per_k in sums.items():
        for k, total in per_k.items():
            assert result["methods"][method][f"mAP@{k}"] == pytest.approx(100 * total / len(queries), abs=1e-3), (method, k)


def test_circo_test_submission_format(data, clip, mapper, tmp_path):
    path = circo.write_test_submission(clip, mapper, data / "circo", tmp_path)
    sub = json.loads(path.read_text())
    assert set(sub) == {"0", "1", "2"}
    assert all(len(v) == 16 and all(isinstance(i, int) for i in v) for v in sub.values())


def test_coco_objects_matches_slow_reference(data, clip, mapper):
    qdir = data / "prepared" / "coco"
    result = coco_objects.evaluate_coco_objects(clip, mapper, data / "coco", qdir, ks=(1, 5))
    queries = read_coco(qdir)
    names = [q.file_name for q in queries]
    gallery = F.normalize(embed(clip, [data / "coco" / "val2017" / n for n in names]), dim=-1)
    crops = embed(clip, [query_crop_path(qdir, n) for n in names])
    hits = {m: {1: 0, 5: 0} for m in result["methods"]}
    for q, crop in zip(queries, crops):
        prompt = "a photo of * and " + " and ".join(q.other_classes)
        for method, vec in per_method(clip, mapper, crop, prompt, prompt.replace("* ", "")).items():
            top = ranked(vec, gallery, names)
            for k in (1, 5):
                hits[method][k] += q.file_name in top[:k]
    for method, per_k in hits.items():
        for k, h in per_k.items():
            assert result["methods"][method][f"R@{k}"] == pytest.approx(100 * h / len(queries), abs=1e-3)


def test_searle_variant_matches_slow_reference(data, clip, mapper):
    fiq = data / "fashion-iq"
    result = evaluate_fashion_iq(clip, mapper, fiq, categories=("dress",), ks=(1, 5), prompt_style="searle")
    assert result["prompt_style"] == "searle"
    triplets, ids = read_triplets(fiq, "dress"), read_split(fiq, "dress")
    gallery = F.normalize(embed(clip, [fiq / "images" / f"{i}.png" for i in ids]), dim=-1)
    refs = embed(clip, [fiq / "images" / f"{t.candidate}.png" for t in triplets])
    hits = {m: {1: 0, 5: 0} for m in result["methods"]}
    for t, ref in zip(triplets, refs):
        orders = [per_method(clip, mapper, ref, prompt, text) for prompt, text in searle_query_texts(t)]
        for method in hits:
            vec = F.normalize(orders[0][method] + orders[1][method], dim=0)
            top = ranked(vec, gallery, ids)
            for k in (1, 5):
                hits[method][k] += t.target in top[:k]
    for method, per_k in hits.items():
        for k, h in per_k.items():
            assert result["methods"][method]["per_category"]["dress"][f"R@{k}"] == pytest.approx(100 * h / len(triplets), abs=1e-3)


def test_searle_texts_strip_punctuation_and_use_both_orders():
    from p2w_lib.datasets.fashion_iq import Triplet

    texts = searle_query_texts(Triplet("a", "b", ("is red.", " has a logo, ")))
    assert texts == [("a photo of * that is red and has a logo", "is red and has a logo"),
                     ("a photo of * that has a logo and is red", "has a logo and is red")]


@pytest.mark.skipif(not (SHARED / "reference" / "circo").is_dir(), reason="../shared/reference absent")
def test_real_circo_val_annotations_parse():
    queries = read_circo(SHARED / "reference" / "circo", "val")
    assert len(queries) == 220
    assert queries[0].reference == 271520 and queries[0].ground_truth[0] == 355099
    assert all(q.ground_truth for q in queries)


def test_malformed_annotation_files_name_the_file(tmp_path):
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "cap.rc2.val.json").write_text(json.dumps([{"pairid": 1, "reference": "x"}]))
    with pytest.raises(DataFormatError, match=r"cap\.rc2\.val\.json: entry 0 lacks"):
        read_cirr(tmp_path, "val")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "val.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"val\.json: malformed JSON"):
        read_circo(tmp_path, "val")
    (tmp_path / "coco_eval.csv").write_text("id,query_regions,query_class,classes\na.jpg,1;2;3,dog,\n")
    with pytest.raises(DataFormatError, match=r"coco_eval\.csv:2: query_regions"):
        read_coco(tmp_path)
