"""The demo world: deterministic, in the real formats, held out, and captions that tell the truth."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from p2w_lib.app.profile import load_profile
from p2w_lib.data.cc3m import read_image_caption_list
from p2w_lib.data.cirr import read_image_split
from p2w_lib.data.cirr import read_queries as read_cirr_queries
from p2w_lib.data.fashion_iq import CATEGORIES, read_split, read_triplets
from p2w_lib.data.imagenet_r import QUERY_LIST, TARGET_LIST, read_label_list
from p2w_lib.demo.build import build_world
from p2w_lib.demo.captions import changed_attributes, garment_phrases, relative_captions
from p2w_lib.demo.cirr_world import cirr_split
from p2w_lib.demo.world import CLASSES, COLOURS, PATTERNS, RENDITIONS, GarmentSpec

ROOT = Path(__file__).resolve().parents[1]
TINY = load_profile(ROOT / "params.yaml", "tiny").world


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    build_world(root, TINY)
    return root


def test_same_seed_gives_byte_identical_files_whatever_the_workers(world, tmp_path):
    build_world(tmp_path / "again", replace(TINY, workers=1))
    assert file_hashes(world) == file_hashes(tmp_path / "again")
    build_world(tmp_path / "other", replace(TINY, seed=1))
    assert file_hashes(tmp_path / "other") != file_hashes(world)


def test_cc3m_list_in_pic2word_format(world):
    assert (world / "cc3m" / "train.tsv").read_text().splitlines()[0] == "filepath\ttitle"
    pairs = read_image_caption_list(world / "cc3m" / "train.tsv")
    assert (
        len(pairs)
        == 16 * (4 * TINY.pretrain_per_class_domain + TINY.pretrain_photos_per_class)
        + 3 * TINY.pretrain_garments_per_category
    )
    assert all(Path(p).is_file() for p, _ in pairs)
    sketch_captions = [c for _, c in pairs if c.startswith("a sketch of")]
    assert sketch_captions and not any(w in c.split() for c in sketch_captions for w in COLOURS)
    neon = [c for _, c in pairs if c.startswith("a neon of")]
    assert not any(w in c.split() for c in neon for w in ("striped", "dotted", "checked", "plain"))


def test_imagenet_r_lists_and_label_encoding(world):
    queries = read_label_list(world / QUERY_LIST)
    targets = read_label_list(world / TARGET_LIST)
    assert len(queries) == 16 * TINY.eval_queries_per_class
    assert all(0 <= label < len(CLASSES) and path.startswith("imgnet/real/") for path, label in queries)
    renditions = [(p, label) for p, label in targets if p.startswith("imgnet/imagenet-r/")]
    assert len(renditions) == 16 * 4 * TINY.eval_renditions_per_class_domain
    for path, label in renditions:
        cls, filename = path.split("/")[-2:]
        assert RENDITIONS[label // 1000] == filename.split("_")[0] and CLASSES[label % 1000] == cls
    real = {p: label for p, label in targets if p.startswith("imgnet/real/")}
    assert real == {p: 6000 + label for p, label in queries}  # query photos are gallery distractors
    assert all((world / p).is_file() for p, _ in targets)
    assert (world / TARGET_LIST).read_text().splitlines()[0].endswith(" ")  # trailing space, as the originals


def test_fashion_iq_files(world):
    fiq = world / "fashion-iq"
    for category in CATEGORIES:
        for split in ("val", "train"):
            triplets = read_triplets(fiq, category, split)
            ids = set(read_split(fiq, category, split))
            assert all(t.candidate in ids and t.target in ids and t.candidate != t.target for t in triplets)
            assert all(len(t.captions) == 2 and all(t.captions) for t in triplets)
            assert all((fiq / "images" / f"{i}.png").is_file() for i in ids)
        val = read_triplets(fiq, category, "val")
        assert len(val) == TINY.fiq_val_triplets
        gallery = read_split(fiq, category, "val")
        assert len(gallery) == TINY.fiq_val_gallery == len(set(gallery))
    val_ids = {i for c in CATEGORIES for i in read_split(fiq, c, "val")}
    train_ids = {i for c in CATEGORIES for i in read_split(fiq, c, "train")}
    assert not val_ids & train_ids


def test_more_training_triplets_change_no_evaluation_file(world, tmp_path):
    """Combiner's labeled triplets come from a stream of their own: their number (the curve one measures)
    changes no evaluation image or annotation, and their images are never evaluation images."""
    bigger = replace(TINY, fiq_train_triplets=2 * TINY.fiq_train_triplets)
    build_world(tmp_path / "bigger", bigger)
    before, after = file_hashes(world), file_hashes(tmp_path / "bigger")
    train = {
        f"fashion-iq/images/{i}.png"
        for c in CATEGORIES
        for i in read_split(tmp_path / "bigger" / "fashion-iq", c, "train")
    }
    changed = {f for f in before.keys() | after.keys() if before.get(f) != after.get(f)}
    assert changed and changed <= train | {f"fashion-iq/captions/cap.{c}.train.json" for c in CATEGORIES} | {
        f"fashion-iq/image_splits/split.{c}.train.json" for c in CATEGORIES
    } | {"world.json"}
    assert len(read_triplets(tmp_path / "bigger" / "fashion-iq", "dress", "train")) == bigger.fiq_train_triplets


def test_evaluation_images_are_held_out_of_training(world):
    train = {
        hashlib.sha256(Path(p).read_bytes()).hexdigest()
        for p, _ in read_image_caption_list(world / "cc3m" / "train.tsv")
    }
    eval_files = [world / p for p, _ in read_label_list(world / TARGET_LIST)]
    eval_files += sorted((world / "fashion-iq" / "images").glob("*.png"))
    assert not train & {hashlib.sha256(p.read_bytes()).hexdigest() for p in eval_files}
    assert not any("cc3m" in str(p) for p in eval_files)


def test_relative_captions_name_every_change():
    cand = GarmentSpec("dress", "red", "solid", "short", "round", "long", "", 1)
    target = GarmentSpec("dress", "blue", "striped", "long", "round", "long", "white", 2)
    import random

    for seed in range(20):
        c1, c2 = relative_captions(cand, target, random.Random(seed))
        text = f"{c1} and {c2}"
        assert "blue" in text and "striped" in text and "long sleeves" in text and "white logo" in text
    assert changed_attributes(cand, target) == ["colour", "pattern", "sleeve", "logo"]
    assert garment_phrases(target)["logo"] == "has a white logo"
    assert set(PATTERNS) == {"solid", "striped", "dotted", "checked"}


def test_demo_world_oracle_and_metadata(world):
    oracle = json.loads((world / "oracle" / "domain_conversion.json").read_text())
    queries = read_label_list(world / QUERY_LIST)
    assert oracle["sketch"][0] == f"a sketch of a {CLASSES[queries[0][1]]}"
    meta = json.loads((world / "world.json").read_text())
    assert meta["renditions"] == list(RENDITIONS)


def test_hard_negative_groups_differ_only_in_the_object_word():
    from p2w_lib.demo.batches import caption_groups

    captions = [
        "a photo of a red star",
        "a photo of a red heart",
        "a photo of a blue star",
        "a sketch of a star",
        "a photo of a red star",
        "a photo of a star and a heart",
        "a sketch of a moon",
    ]
    groups = caption_groups(captions, ["star", "heart", "moon"])
    assert sorted(map(sorted, groups)) == [[0, 1, 4], [3, 6]]  # one word apart; no group of a single object


def test_mixed_batches_are_deterministic_unique_and_hold_the_groups(world):
    from p2w_lib.demo.batches import caption_groups, mixed_batch
    from p2w_lib.demo.clip_pretrain import OBJECT_WORDS

    captions = [c for _, c in read_image_caption_list(world / "cc3m" / "train.tsv")]
    groups = caption_groups(captions, OBJECT_WORDS)
    assert groups
    member = {i for g in groups for i in g}
    a = mixed_batch(5, len(captions), 32, 0, groups, 0.5, group_size=4)
    assert a.tolist() == mixed_batch(5, len(captions), 32, 0, groups, 0.5, group_size=4).tolist()  # resumable
    assert len(set(a.tolist())) == 32 and all(i in member for i in a[:16].tolist())
    assert (
        mixed_batch(5, len(captions), 32, 0, groups, 0.0).tolist()
        == __import__("p2w_lib.methods.pic2word.train", fromlist=["batch_indices"])
        .batch_indices(5, len(captions), 32, 0)
        .tolist()
    )


def test_cirr_analogue_files_sets_and_captions(world):
    """CIRR's files as the real ones (read by the CIRR reader); every query inside its set of six; in
    val, one image per attribute combination; a caption names exactly the attributes that change."""
    root = world / "cirr"
    val, train = read_image_split(root, "val"), read_image_split(root, "train")
    assert all(path.is_file() for path in [*val.values(), *train.values()])
    assert not set(val) & set(train)
    for split, n_sets in (("val", TINY.cirr_val_sets), ("train", TINY.cirr_train_sets)):
        queries = read_cirr_queries(root, split)
        assert len(queries) == 3 * n_sets
        for q in queries:
            assert len(q.members) == 6 and q.reference in q.members and q.target in q.members
            assert q.reference != q.target
    specs, entries = cirr_split(random.Random("check"), "val", 40, Path("/nowhere"))
    keys = [tuple(getattr(s, k) for k in ("cls", "colour", "pattern", "size")) for s, _ in specs.values()]
    assert len(set(keys)) == len(keys) == 240
    for e in entries:
        ref, tgt = specs[e["reference"]][0], specs[e["target_hard"]][0]
        changed = [k for k in ("cls", "colour", "pattern", "size") if getattr(ref, k) != getattr(tgt, k)]
        assert 1 <= len(changed) <= 4 and len(e["caption"].split(" and ")) == len(changed)
        for k in changed:
            word = getattr(tgt, k) if k != "pattern" or tgt.pattern != "solid" else "plain"
            assert word in e["caption"].split(), (e["caption"], k)
