"""Combiner's labeled training triplets, read from each source's real file format: every triplet of
the training split, never an evaluation image, and missing images counted, not silently lost."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from p2w_lib.app.profile import load_profile
from p2w_lib.app.training_data import training_triplets
from p2w_lib.data.cirr import read_image_split
from p2w_lib.data.cirr import read_queries as read_cirr_queries
from p2w_lib.data.fashion_iq import CATEGORIES, read_triplets
from p2w_lib.data.images import BadImagesError
from p2w_lib.demo.build import build_world

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(tmp_path_factory, monkeypatch):
    """The tiny profile, its world built under a scratch working directory (world_dir is data/tiny)."""
    work = tmp_path_factory.mktemp("work")
    p = load_profile(ROOT / "params.yaml", "tiny")
    monkeypatch.chdir(work)
    build_world(p.world_dir, p.world)
    return p


def test_each_source_gives_every_training_triplet_in_order(tiny):
    fiq = training_triplets(tiny, "fashion_iq")
    expected = [t for c in CATEGORIES for t in read_triplets(tiny.world_dir / "fashion-iq", c, "train")]
    assert len(fiq) == len(expected) == 3 * tiny.world.fiq_train_triplets
    assert [Path(r).stem for r in fiq.references] == [t.candidate for t in expected]
    assert [c for c in fiq.captions] == [tuple(t.captions) for t in expected]

    cirr = training_triplets(tiny, "cirr")
    queries = read_cirr_queries(tiny.world_dir / "cirr", "train")
    assert len(cirr) == len(queries) == 3 * tiny.world.cirr_train_sets
    assert [Path(t).stem for t in cirr.targets] == [q.target for q in queries]
    assert cirr.captions == tuple((q.caption,) for q in queries)  # CIRR: one caption, used as it is
    val = {str(p) for p in read_image_split(tiny.world_dir / "cirr", "val").values()}
    assert not (set(cirr.references) | set(cirr.targets)) & val
    assert fiq.identity != cirr.identity


def test_an_unknown_source_is_refused(tiny):
    with pytest.raises(ValueError, match="known: \\['cirr', 'fashion_iq'\\]"):
        training_triplets(tiny, "circo")


def test_a_training_triplet_on_an_evaluation_image_is_refused(tiny):
    path = tiny.world_dir / "cirr" / "captions" / "cap.rc2.train.json"
    entries = json.loads(path.read_text())
    entries[0]["reference"] = read_cirr_queries(tiny.world_dir / "cirr", "val")[0].reference
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match="cap.rc2.train.json.*in the val or test1 split"):
        training_triplets(tiny, "cirr")


def test_missing_images_are_counted_and_too_many_are_an_error(tiny, caplog):
    first = read_cirr_queries(tiny.world_dir / "cirr", "train")[0]
    read_image_split(tiny.world_dir / "cirr", "train")[first.reference].unlink()
    lenient = replace(tiny, eval=replace(tiny.eval, max_bad_fraction=0.5))
    with caplog.at_level(logging.WARNING):
        kept = training_triplets(lenient, "cirr")
    lost = sum(first.reference in (q.reference, q.target) for q in read_cirr_queries(tiny.world_dir / "cirr", "train"))
    assert len(kept) == 3 * tiny.world.cirr_train_sets - lost
    assert f"{lost} of {3 * tiny.world.cirr_train_sets} triplets have a missing image" in caplog.text
    strict = replace(tiny, eval=replace(tiny.eval, max_bad_fraction=0.0))
    with pytest.raises(BadImagesError, match="cirr train.*restore the images"):
        training_triplets(strict, "cirr")
