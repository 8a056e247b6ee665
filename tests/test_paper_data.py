"""Paper-profile inputs: verified downloads, the CLIP-weights fast failure, CC3M as a list or as
WebDataset shards, the seeded COCO object queries, and the data report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from p2w_lib import ClipConfig, load_clip
from p2w_lib.app.downloads import (
    PIC2WORD_IMAGENET_LISTS,
    ChecksumError,
    fetch_pic2word_lists,
    fetch_verified,
    sha256_file,
)
from p2w_lib.app.paper_data import PaperDataConfig, prepare_paper_data
from p2w_lib.clip import weights as pw
from p2w_lib.data.cc3m import read_training_pairs
from p2w_lib.data.coco import build_object_queries, query_crop_path, read_queries
from p2w_lib.data.images import load_rgb
from p2w_lib.data.webdataset import read_member, read_shards
from tests import paper_fixtures as fx
from tests.conftest import SHARED

REAL_LISTS = SHARED / "reference" / "pic2word-imagenet-r"


# -- downloads --------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_LISTS.is_dir(), reason="../shared/reference absent")
def test_pic2word_lists_fetched_and_verified_against_published_sha256(tmp_path):
    """The real list files, served from a file:// URL, pass the checksums published for them."""
    sources = {f.name.split("/")[-1]: (REAL_LISTS / f.name.split("/")[-1]).as_uri() for f in PIC2WORD_IMAGENET_LISTS}
    paths = fetch_pic2word_lists(tmp_path, sources)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "imgnet/imgnet_real_query.txt",
        "imgnet/imgnet_targets.txt",
    ]
    assert sum(1 for _ in open(paths[0])) == 10000 and sum(1 for _ in open(paths[1])) == 16983


def test_checksum_mismatch_writes_nothing(tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("imgnet/real/a.JPEG 0 \n")
    dest = tmp_path / "data" / "imgnet" / "list.txt"
    with pytest.raises(ChecksumError, match="differs from the expected"):
        fetch_verified(src.as_uri(), dest, "0" * 64)
    assert not dest.exists() and not list(dest.parent.glob(".*tmp"))
    fetch_verified(str(src), dest, sha256_file(src))  # a local path works too
    assert dest.read_text() == src.read_text()


def test_unreachable_source_is_an_actionable_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="copy it to"):
        fetch_verified((tmp_path / "absent.txt").as_uri(), tmp_path / "out.txt", "0" * 64)


# -- CLIP weights -----------------------------------------------------------------------------


def test_missing_weights_fail_fast_without_calling_open_clip(tmp_path, monkeypatch):
    """Not cached + no network: one message naming the file and the fix; open_clip is never asked."""
    import open_clip

    def no_download(*args, **kwargs):
        raise AssertionError("open_clip must not be called when the weights cannot be had")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", no_download)
    probed = []
    monkeypatch.setattr(pw, "reachable", lambda host, **kw: probed.append(host) or False)
    with pytest.raises(pw.WeightsUnavailableError) as err:
        load_clip(ClipConfig(model="ViT-L-14", pretrained="openai", cache_dir=str(tmp_path)))
    message = str(err.value)
    assert "ViT-L-14/openai" in message and "vit_large_patch14_clip_224.openai" in message
    assert str(tmp_path) in message and "clip.pretrained" in message
    assert probed == ["huggingface.co"]


def test_cached_weights_are_found_without_probing(tmp_path, monkeypatch):
    repo = tmp_path / "models--timm--vit_large_patch14_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"weights")
    found = pw.require_weights("ViT-L-14", "openai", str(tmp_path), probe=lambda host: pytest.fail("probed"))
    assert found == str(snap / "open_clip_model.safetensors")


def test_reachable_is_false_for_a_closed_port():
    assert pw.reachable("127.0.0.1", port=9, timeout=0.3) is False


def test_hf_hub_offline_counts_as_no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(pw.WeightsUnavailableError, match="HF_HUB_OFFLINE"):
        pw.require_weights("ViT-B-32", "openai", str(tmp_path), probe=lambda host: True)


# -- CC3M -------------------------------------------------------------------------------------


def test_webdataset_shards_are_read_member_by_member(tmp_path):
    keys = fx.cc3m_shards(tmp_path / "cc3m" / "shards")
    pairs, source, skipped = read_training_pairs(tmp_path / "cc3m")
    assert source == "shards" and skipped == {"samples_without_image": 2}
    assert [ref.rsplit("::", 1)[1] for ref, _ in pairs] == [f"{k}.jpg" for k in keys]
    assert pairs[0][1] == f"caption {keys[0]}"
    assert load_rgb(pairs[5][0]).size == (32, 32)
    with pytest.raises(FileNotFoundError, match="no member"):
        read_member(pairs[0][0].replace(".jpg", ".png"))


def test_no_cc3m_data_names_both_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.tsv.*shards"):
        read_training_pairs(tmp_path)
    (tmp_path / "shards").mkdir()
    with pytest.raises(FileNotFoundError, match="no .tar shards"):
        read_shards(tmp_path / "shards")


# -- COCO object queries --------------------------------------------------------------------


def test_coco_object_queries_are_seeded_and_in_the_original_format(tmp_path):
    fx.coco(tmp_path)
    counts = build_object_queries(tmp_path / "coco", tmp_path / "q0", seed=0)
    assert counts == {"images": 8, "queries": 8, "no_candidate": 0, "missing_image": 0, "rule": "official"}
    again = build_object_queries(tmp_path / "coco", tmp_path / "q1", seed=0)
    assert again == counts
    assert (tmp_path / "q0" / "coco_eval.csv").read_text() == (tmp_path / "q1" / "coco_eval.csv").read_text()
    header = (tmp_path / "q0" / "coco_eval.csv").read_text().splitlines()[0]
    assert header == "id,query_regions,query_class,classes"
    queries = read_queries(tmp_path / "q0")
    q = queries[0]
    assert q.file_name == "000000000001.jpg" and len(q.box) == 4 and q.query_class not in q.other_classes
    crop = Image.open(query_crop_path(tmp_path / "q0", q.file_name))
    assert crop.size[0] == crop.size[1]  # stretched to a square, as the original's region transform
    other_seeds = {
        tuple(r.query_class for r in read_queries(tmp_path / f"s{s}"))
        for s in range(6)
        if build_object_queries(tmp_path / "coco", tmp_path / f"s{s}", seed=s)
    }
    assert len(other_seeds) > 1  # the seed matters: the choice is random, but repeatable


def test_coco_candidates_follow_the_official_rule(tmp_path):
    """prepare_data.py: box area in pixels, 0.05 < area < 0.5 x image area, crowd instances included.
    The candidate sets are recomputed here from that definition for every image of the fixture."""
    import json

    from p2w_lib.data.coco import is_candidate

    fx.coco(tmp_path)
    data = json.loads((tmp_path / "coco" / "annotations" / "instances_val2017.json").read_text())
    sizes = {im["id"]: im["width"] * im["height"] for im in data["images"]}
    official = {a["id"] for a in data["annotations"] if 0.05 < a["bbox"][2] * a["bbox"][3] < 0.5 * sizes[a["image_id"]]}
    assert 99 in official and 70 in official  # the crowd instance and the 16-pixel box
    assert {a["id"] for a in data["annotations"] if is_candidate(a, sizes[a["image_id"]])} == official
    sub_pixel = {"bbox": [3.2, 3.1, 0.5, 0.4], "iscrowd": 0}  # official area test passes (0.2 > 0.05)...
    assert not is_candidate(sub_pixel, 1000)  # ...but int-truncated it crops nothing: the one guard
    relative = {a["id"] for a in data["annotations"] if is_candidate(a, sizes[a["image_id"]], "relative")}
    assert relative == official - {99, 70}
    counts = build_object_queries(tmp_path / "coco", tmp_path / "rel", seed=0, rule="relative")
    assert (counts["queries"], counts["no_candidate"]) == (7, 1)
    chosen = {
        build_object_queries(tmp_path / "coco", tmp_path / f"o{s}", seed=s)
        and read_queries(tmp_path / f"o{s}")[6].query_class
        for s in range(12)
    }
    assert "bench" in chosen  # image 7's crowd bench is drawn under the official rule
    with pytest.raises(ValueError, match="choose from"):
        build_object_queries(tmp_path / "coco", tmp_path / "x", rule="5-50%")


def _compress_rle(runs):
    """COCO's compressed RLE string, written from the format (pycocotools' rleToString)."""
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


@pytest.mark.parametrize("compressed", [False, True])
def test_rle_masks_decode_column_major(compressed):
    from p2w_lib.data.coco import instance_mask

    rng = np.random.default_rng(0)
    mask = rng.random((13, 17)) < 0.3
    mask[:, :3] = False  # long background runs: differences of both signs in the compressed form
    assert fx.box_rle(0, 0, 0, 0, 17, 13) == [13 * 17]  # all background
    # by hand: [[0,1,0],[1,1,0]] read column by column is 0,1 | 1,1 | 0,0: runs 1 background, 3 object, 2 background
    hand = np.array([[0, 1, 0], [1, 1, 0]], dtype=bool)
    assert np.array_equal(instance_mask({"size": [2, 3], "counts": [1, 3, 2]}, 2, 3), hand)
    runs = fx.mask_rle(mask)
    rle = {"size": [13, 17], "counts": _compress_rle(runs) if compressed else runs}
    assert np.array_equal(instance_mask(rle, 13, 17), mask)


# -- the data report --------------------------------------------------------------------------


def test_prepare_reports_missing_files_by_count_and_example(tmp_path, monkeypatch):
    root, sources = tmp_path / "data" / "paper", tmp_path / "sources"
    lists = fx.paper_world(root, sources)
    from p2w_lib.app import downloads

    monkeypatch.setattr(
        downloads,
        "PIC2WORD_IMAGENET_LISTS",
        tuple(downloads.RemoteFile(f"imgnet/{p.name}", p.as_uri(), sha256_file(p)) for p in lists.values()),
    )
    cfg = PaperDataConfig(
        imagenet_val=str(sources / "imagenet_val"),
        imagenet_r=(sources / "imagenet-r.tar").as_uri(),
        imagenet_lists=str(sources / "lists"),
    )
    report = prepare_paper_data(root, cfg)
    assert report["domain_conversion"]["gallery"]["missing"] == 1
    assert report["domain_conversion"]["gallery"]["first_missing"][0].endswith("n01484850/sculpture_1.jpg")
    assert report["domain_conversion"]["queries"]["missing"] == 0
    assert report["domain_conversion"]["imagenet-r"] == str(root / "imgnet" / "imagenet-r")  # downloaded, extracted
    assert (root / "imgnet" / "imagenet-r.tar").is_file()
    assert (root / "imgnet" / "real").is_symlink()
    assert report["fashion_iq"]["shirt"] == {
        "triplets": 6,
        "evaluable": 4,
        "gallery": 8,
        "gallery_missing": 1,
        "first_missing": ["s1007"],
    }
    assert report["fashion_iq"]["dress_train"] == {"triplets": 6, "with_both_images": 6}
    assert report["cc3m"]["training_images"] == 24 and report["cc3m"]["missing"] == 0
    assert report["coco_objects"]["queries"] == 8  # the official rule: the 16-pixel box is a candidate
    assert json.loads((root / "prepared" / "report.json").read_text()) == report
    before = (root / "prepared" / "report.json").read_bytes()
    prepare_paper_data(root, cfg)  # unchanged data, unchanged report: DVC re-runs nothing downstream
    assert (root / "prepared" / "report.json").read_bytes() == before

    # A switched-on benchmark without its annotations: one error listing it, report still written.
    (root / "cirr" / "captions" / "cap.rc2.val.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"cirr: .*cap\.rc2\.val\.json: missing CIRR caption file"):
        prepare_paper_data(root, cfg)
    assert "error" in json.loads((root / "prepared" / "report.json").read_text())["cirr"]
    report = prepare_paper_data(root, PaperDataConfig(**{**cfg.__dict__, "benchmarks": ("fashion_iq",)}))
    assert "cirr" not in report and "domain_conversion" not in report


def test_cli_prints_the_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    import yaml

    from p2w_lib.cli import main as cli_main

    monkeypatch.setattr(pw, "reachable", lambda host, **kw: False)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "profile": "paper",
                "profiles": {
                    "paper": {
                        "kind": "paper",
                        "seeds": [0],
                        "clip": {"model": "ViT-L-14", "pretrained": "openai", "cache_dir": str(tmp_path)},
                    }
                },
            }
        )
    )
    assert cli_main(["check-weights", "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CLIP weights ViT-L-14/openai are not cached") and "Traceback" not in err


@pytest.mark.skipif(not (SHARED / "reference" / "fashion-iq").is_dir(), reason="../shared/reference absent")
def test_fashion_iq_annotations_fetched_when_missing_and_left_alone_when_present(tmp_path):
    from p2w_lib.app.downloads import FASHION_IQ_VAL_FILES, fetch_missing

    base = (SHARED / "reference" / "fashion-iq").as_uri()
    fetched = fetch_missing(tmp_path, FASHION_IQ_VAL_FILES, base)
    assert len(fetched) == 6 and (tmp_path / "fashion-iq" / "captions" / "cap.dress.val.json").is_file()
    mine = tmp_path / "fashion-iq" / "captions" / "cap.shirt.val.json"
    mine.write_text("[]")  # the user's own file is never overwritten or re-checked
    assert fetch_missing(tmp_path, FASHION_IQ_VAL_FILES, "file:///nonexistent") == []
    assert mine.read_text() == "[]"
