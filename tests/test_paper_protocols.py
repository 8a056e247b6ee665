"""CIRR, CIRCO, COCO objects and the SEARLE Fashion-IQ variant against slow per-query references
on fixtures in the real formats; the submission files; the real CIRCO annotations."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from p2w_lib import Mapper, encode_composed
from p2w_lib.data.circo import read_queries as read_circo
from p2w_lib.data.cirr import read_image_split
from p2w_lib.data.cirr import read_queries as read_cirr
from p2w_lib.data.coco import build_object_queries, query_crop_path
from p2w_lib.data.coco import read_queries as read_coco
from p2w_lib.data.errors import DataFormatError
from p2w_lib.data.fashion_iq import read_split, read_triplets
from p2w_lib.data.images import load_rgb
from p2w_lib.protocols import circo, cirr, coco_objects, submissions
from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq, searle_query_texts
from tests import paper_fixtures as fx
from tests.conftest import SHARED
from tests.slerp_reference import slerp_reference


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


def per_method(clip, mapper, ref, prompt, text, alpha=0.8):
    """The query embeddings of one query, written out plainly (alpha: the benchmark's Slerp weight)."""
    image = F.normalize(ref, dim=0)
    t = clip.encode_text([text], normalize=True)[0]
    composed = encode_composed(clip.model, clip.tokenizer, [prompt], mapper(ref[None]))[0]
    return {
        "image_only": image,
        "text_only": t,
        "image_text": F.normalize(image + t, dim=0),
        "slerp": slerp_reference(image, t, alpha),
        "pic2word": composed,
    }


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
        for method, vec in per_method(
            clip, mapper, ref, f"a photo of * , {q.caption}", q.caption, alpha=0.9
        ).items():  # CIRR: the paper's 0.9
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
        assert len(recall[pairid]) == 50 and q.reference not in recall[pairid] and len(set(recall[pairid])) == 50
        assert len(subset[pairid]) == 3 and set(subset[pairid]) <= set(q.members) - {q.reference}
    assert " " not in paths["recall"].read_text() and "\n" not in paths["recall"].read_text()  # compact


@pytest.mark.parametrize("drop", [None, 108])
def test_circo_matches_slow_reference(data, clip, mapper, tmp_path, drop):
    """Written from CIRCO's evaluation.py: AP@K divides by min(K, len(gt_img_ids)) as annotated (a
    repeated id counts twice; an unreadable ground truth still counts), Recall@K is the hit of
    target_img_id, and the semantic mAP@10 averages AP@10 over the queries tagged with an aspect."""
    root = data / "circo"
    if drop is not None:  # query 2's ground truth is 107, 108, 109: lose one image
        import shutil

        root = shutil.copytree(root, tmp_path / "circo")
        (root / "COCO2017_unlabeled" / "unlabeled2017" / f"{drop:012d}.jpg").unlink()
    result = circo.evaluate_circo(clip, mapper, root, ks=(5, 10), max_bad_fraction=0.1)
    assert result["n_ground_truth_missing"] == (drop is not None)
    ids = [i for i in sorted(fx.CIRCO_IDS + fx.CIRCO_DISTRACTORS) if i != drop]
    raw = embed(clip, [root / "COCO2017_unlabeled" / "unlabeled2017" / f"{i:012d}.jpg" for i in ids])
    gallery = F.normalize(raw, dim=-1)
    queries = [q for q in read_circo(root, "val") if set(q.ground_truth) & set(ids)]  # no readable GT: skipped
    assert result["n_queries_skipped"] == 5 - len(queries)
    annotations = {a["id"]: a for a in json.loads((root / "annotations" / "val.json").read_text())}
    assert any(len(set(a["gt_img_ids"])) < len(a["gt_img_ids"]) for a in annotations.values())  # the case that matters
    sums = {m: {5: 0.0, 10: 0.0} for m in result["methods"]}
    recall = {m: {5: 0, 10: 0} for m in result["methods"]}
    aspects = {m: {} for m in result["methods"]}
    for q in queries:
        a = annotations[q.id]
        ref = raw[ids.index(q.reference)]
        for method, vec in per_method(clip, mapper, ref, f"a photo of * , {q.caption}", q.caption).items():
            predictions = ranked(vec, gallery, ids)[:50]  # the reference stays in the gallery
            for k in (5, 10):
                hits, ap = 0, 0.0
                for rank, image in enumerate(predictions[:k], start=1):
                    if image in a["gt_img_ids"]:
                        hits += 1
                        ap += hits / rank
                sums[method][k] += ap / min(k, len(a["gt_img_ids"]))
                recall[method][k] += a["target_img_id"] in predictions[:k]
                if k == 10:
                    for aspect in a["semantic_aspects"]:
                        aspects[method].setdefault(aspect, []).append(ap / min(k, len(a["gt_img_ids"])))
    for method, per_k in sums.items():
        got = result["methods"][method]
        for k, total in per_k.items():
            assert got[f"mAP@{k}"] == pytest.approx(100 * total / len(queries), abs=1e-3), (method, k)
            assert got[f"R@{k}"] == pytest.approx(100 * recall[method][k] / len(queries), abs=1e-3), (method, k)
        for aspect in circo.SEMANTIC_ASPECTS:
            values = aspects[method].get(aspect)
            expected = 100 * sum(values) / len(values) if values else None
            assert got["semantic_mAP@10"][aspect] == (pytest.approx(expected, abs=1e-3) if values else None), (
                method,
                aspect,
            )


def test_circo_test_submission_format(data, clip, mapper, tmp_path):
    path = circo.write_test_submission(clip, mapper, data / "circo", tmp_path)
    sub = json.loads(path.read_text())
    assert set(sub) == {"0", "1", "2"}
    assert all(len(v) == 50 == len(set(v)) and all(isinstance(i, int) for i in v) for v in sub.values())


def test_coco_objects_matches_slow_reference(data, clip, mapper):
    qdir = data / "prepared" / "coco"
    result = coco_objects.evaluate_coco_objects(clip, mapper, data / "coco", qdir, ks=(1, 5))
    queries = read_coco(qdir)
    names = [q.file_name for q in queries]
    gallery = F.normalize(embed(clip, [data / "coco" / "val2017" / n for n in names]), dim=-1)
    crops = embed(clip, [query_crop_path(qdir, n) for n in names])
    hits = {m: {1: 0, 5: 0} for m in result["methods"]}
    rows = (qdir / "coco_eval.csv").read_text().splitlines()[1:]
    for q, crop, row in zip(queries, crops, rows):
        # data.py's CsvCOCO, from the csv row: classes split on ';' ([""] when empty), then formatted
        file_name, _, query_class, classes = row.split(",")
        assert file_name == q.file_name
        others = classes.split(";") if classes else [""]
        prompt = "a photo of * and {} and {}".format(query_class, " and ".join(others))
        text = "a photo of {} and {}".format(query_class, " and ".join(others))
        for method, vec in per_method(clip, mapper, crop, prompt, text).items():
            top = ranked(vec, gallery, names)
            for k in (1, 5):
                hits[method][k] += q.file_name in top[:k]
    for method, per_k in hits.items():
        for k, h in per_k.items():
            assert result["methods"][method][f"R@{k}"] == pytest.approx(100 * h / len(queries), abs=1e-3)


def test_searle_variant_matches_slow_reference(data, clip, mapper):
    fiq = data / "fashion-iq"
    result = evaluate_fashion_iq(clip, mapper, fiq, categories=("dress",), ks=(1, 5), prompts="searle")
    assert result["prompts"] == "searle"
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
            assert result["methods"][method]["per_category"]["dress"][f"R@{k}"] == pytest.approx(
                100 * h / len(triplets), abs=1e-3
            )


def test_searle_texts_strip_punctuation_and_use_both_orders():
    from p2w_lib.data.fashion_iq import Triplet

    texts = searle_query_texts(Triplet("a", "b", ("is red.", " has a logo, ")))
    assert texts == [
        ("a photo of * that is red and has a logo", "is red and has a logo"),
        ("a photo of * that has a logo and is red", "has a logo and is red"),
    ]


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


def test_coco_texts_follow_the_original_format():
    from p2w_lib.data.coco import ObjectQuery

    q = ObjectQuery("1.jpg", (0, 0, 1, 1), "dog", ("frisbee", "bench"))
    assert coco_objects.texts_for(q) == (
        "a photo of * and dog and frisbee and bench",
        "a photo of dog and frisbee and bench",
    )
    alone = ObjectQuery("2.jpg", (0, 0, 1, 1), "dog", ())
    assert coco_objects.texts_for(alone) == ("a photo of * and dog and ", "a photo of dog and ")  # as the original
    assert coco_objects.texts_for(q, "class_free")[0] == "a photo of * and frisbee and bench"
    with pytest.raises(ValueError, match="choose from"):
        coco_objects.texts_for(q, "other")


# -- test-server rules ----------------------------------------------------------------------

needs_cirr = pytest.mark.skipif(not (SHARED / "reference" / "cirr").is_dir(), reason="../shared/reference absent")


@needs_cirr
def test_cirr_recall_file_fits_the_server_at_the_real_size(tmp_path):
    """Every real test1 pairid with 50 real test1 names (the longest ones: the worst case): the
    compact file passes the 5 MB rule; the same content indented (the old writer) would not."""
    ref = SHARED / "reference" / "cirr"
    queries = read_cirr(ref, "test1")
    names = sorted(read_image_split(ref, "test1"), key=len, reverse=True)[:50]
    recall = {"version": "rc2", "metric": "recall", **{str(q.pairid): names for q in queries}}
    submissions.check_cirr_submission(recall, [q.pairid for q in queries], "recall")
    path = submissions.write_submission(tmp_path / "recall.json", recall)
    assert path.stat().st_size <= submissions.CIRR_MAX_BYTES < len(json.dumps(recall, indent=2).encode())
    assert json.loads(path.read_text()) == recall


def test_cirr_rules_are_checked():
    ok = {"version": "rc2", "metric": "recall_subset", "1": ["a", "b", "c"], "2": ["a", "b", "d"]}
    submissions.check_cirr_submission(ok, [1, 2], "recall_subset")
    cases = {
        "'version' must be 'rc2'": {**ok, "version": "rc1"},
        "'metric' must be 'recall_subset'": {**ok, "metric": "recall"},
        "1 pairids have no list": {k: v for k, v in ok.items() if k != "2"},
        "needs a list of 3": {**ok, "1": ["a", "b"]},
        "repeated entries": {**ok, "1": ["a", "a", "b"]},
        "unknown pairid '7'": {**ok, "7": ["a", "b", "c"]},
    }
    for message, bad in cases.items():
        with pytest.raises(submissions.SubmissionError, match=message):
            submissions.check_cirr_submission(bad, [1, 2], "recall_subset")
    big = {
        "version": "rc2",
        "metric": "recall",
        **{str(i): [f"test1-{i}-{j}-img0-padding-padding" for j in range(50)] for i in range(3000)},
    }
    with pytest.raises(submissions.SubmissionError, match="over the server's 5,000,000"):
        submissions.check_cirr_submission(big, range(3000), "recall")


def test_circo_rules_are_checked():
    ids = list(range(100, 150))
    submissions.check_circo_submission({"0": ids, "1": ids}, [0, 1])
    with pytest.raises(submissions.SubmissionError, match="1 query ids have no list"):
        submissions.check_circo_submission({"0": ids}, [0, 1])
    with pytest.raises(submissions.SubmissionError, match="entries must be int"):
        submissions.check_circo_submission({"0": [str(i) for i in ids], "1": ids}, [0, 1])
    with pytest.raises(submissions.SubmissionError, match="needs a list of 50"):
        submissions.check_circo_submission({"0": ids[:49], "1": ids}, [0, 1])


@pytest.mark.skipif(not (SHARED / "reference" / "circo").is_dir(), reason="../shared/reference absent")
def test_circo_file_at_the_real_size_passes(tmp_path):
    queries = read_circo(SHARED / "reference" / "circo", "test")
    assert len(queries) == 800
    sub = {str(q.id): list(range(500_000, 500_050)) for q in queries}
    submissions.check_circo_submission(sub, [q.id for q in queries])
    assert json.loads(submissions.write_submission(tmp_path / "circo.json", sub).read_text()) == sub


# -- each method under its own paper's protocol (eval.prompts) ------------------------------------


@pytest.fixture(scope="module")
def networks(clip, mapper):
    torch.manual_seed(1)
    other = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=32).eval()  # stands in for a phi
    return {"pic2word": mapper, "lincir": other, "searle": other}


def test_cirr_scores_lincir_and_searle_under_their_own_prompt_by_default(data, clip, networks):
    result = cirr.evaluate_cirr(clip, networks, data / "cirr", ks=(1, 5, 10), methods=["pic2word", "lincir"])
    assert result["prompts"] == "own" and result["protocols"] == {"lincir": "searle"}
    files = read_image_split(data / "cirr", "val")
    names = sorted(files)
    raw = embed(clip, [files[n] for n in names])
    gallery = F.normalize(raw, dim=-1)
    hits = {"pic2word": 0, "lincir": 0}
    queries = read_cirr(data / "cirr", "val")
    for q in queries:
        ref = raw[names.index(q.reference)]
        for method, prompt in (
            ("pic2word", f"a photo of * , {q.caption}"),
            ("lincir", f"a photo of * that {q.caption}"),
        ):
            vec = encode_composed(clip.model, clip.tokenizer, [prompt], networks[method](ref[None]))[0]
            hits[method] += q.target in ranked(vec, gallery, names, drop=q.reference)[:5]
    for method, h in hits.items():
        assert result["methods"][method]["R@5"] == pytest.approx(100 * h / len(queries), abs=1e-3), method
    same = cirr.evaluate_cirr(clip, networks, data / "cirr", ks=(1, 5, 10), methods=["lincir"], prompts="pic2word")
    assert same["protocols"] == {"lincir": "pic2word"}


def test_fashion_iq_own_protocols_equal_each_family_run_and_record_the_one_prompt_comparison(data, clip, networks):
    fiq, kw = data / "fashion-iq", {"categories": ("dress", "toptee"), "ks": (1, 5)}
    own = evaluate_fashion_iq(clip, networks, fiq, **kw)
    p2w = evaluate_fashion_iq(clip, networks, fiq, prompts="pic2word", **kw)
    srl = evaluate_fashion_iq(clip, networks, fiq, prompts="searle", **kw)
    assert own["protocols"] == {"lincir": "searle", "searle": "searle"}
    assert own["methods"]["pic2word"] == p2w["methods"]["pic2word"]
    assert own["methods"]["image_text"] == p2w["methods"]["image_text"]  # the baselines are Pic2Word's
    assert own["methods"]["lincir"] == srl["methods"]["lincir"] and own["methods"]["searle"] == srl["methods"]["searle"]
    assert own["under_pic2word_prompts"]["lincir"] == p2w["methods"]["lincir"]
    assert set(own["under_pic2word_prompts"]) == {"lincir", "searle"}
    assert "under_pic2word_prompts" not in p2w and "under_pic2word_prompts" not in srl
    with pytest.raises(ValueError, match="choose from"):
        evaluate_fashion_iq(clip, networks, fiq, prompts="theirs", **kw)
