"""Issue-14 reliability cases, each reproduced first: hostile or broken inputs, kills, concurrent
runs. Each test names the case it covers."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2w_lib.clip.features import embed_images
from p2w_lib.data.images import UnreadableImageError, load_rgb
from tests.conftest import write_images
from tests.test_demo_world import (
    world,  # noqa: F401  (session fixture: the tiny demo world)
)


def broken_png(path: Path) -> Path:
    """A PNG whose image decodes but whose APNG frame chunk is out of sequence: PIL raises
    SyntaxError (not OSError) while loading it."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    end = data.find(b"IEND") - 4
    body = b"fdAT" + struct.pack(">I", 7) + b"abcd"
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    path.write_bytes(data[:end] + chunk + data[end:])
    return path


def test_6_png_with_a_corrupt_chunk_is_skipped_and_counted(clip, tmp_path):
    bad = broken_png(tmp_path / "bad.png")
    with pytest.raises(SyntaxError):  # what PIL itself raises: the case of the issue
        with Image.open(bad) as img:
            img.load()
    with pytest.raises(UnreadableImageError, match="bad.png: not a readable image"):
        load_rgb(bad)
    paths = write_images(tmp_path / "ok", 20) + [str(bad)]
    emb = embed_images(clip, paths, cache_dir=tmp_path / "cache", max_bad_fraction=0.1)
    assert not emb.valid[-1] and emb.valid[:-1].all()
    assert "SyntaxError" in emb.report.bad[str(bad)]


def test_6_search_and_recompute_training_survive_the_broken_png(clip, tmp_path):
    from p2w_lib import Mapper, MapperConfig, TrainConfig, train_mapper
    from p2w_lib.retrieval.gallery import search

    paths = write_images(tmp_path / "gallery", 15)
    broken_png(tmp_path / "gallery" / "zz_bad.png")
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=16).eval()
    hits = search(clip, mapper, paths[0], "is red", tmp_path / "gallery", k=3)
    assert len(hits) == 3 and all("zz_bad" not in str(p) for p, _ in hits)
    cfg = TrainConfig(batch_size=8, epochs=1, warmup_steps=1, recompute_image_features=True, max_bad_fraction=0.1)
    run = train_mapper(
        clip, paths + [str(tmp_path / "gallery" / "zz_bad.png")], cfg, MapperConfig(hidden_dim=16), tmp_path / "run"
    )
    assert run.steps == 2


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600])
def test_11_atomic_writes_keep_the_file_mode(tmp_path, mode):
    from p2w_lib.core.files import atomic_write_json, atomic_write_text

    path = tmp_path / "metrics.json"
    path.write_text("{}")
    path.chmod(mode)
    atomic_write_json(path, {"R@10": 1.0})
    assert stat.S_IMODE(path.stat().st_mode) == mode
    fresh = tmp_path / "README.md"
    old = os.umask(0o022)
    try:
        atomic_write_text(fresh, "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # a new file: what open() would give under the umask


def test_12_search_prints_hostile_file_names_escaped(tmp_path, capsys, monkeypatch):
    from p2w_lib import cli

    gallery = tmp_path / "gallery"
    write_images(gallery, 3)
    forged = "x.png\n  1  1.0000  /etc/passwd"
    escape = "\x1b[2J\x1b]0;owned\x07y.png"
    monkeypatch.setattr(
        "p2w_lib.cli.search", lambda *a, **k: [(str(gallery / forged), 0.9), (str(gallery / escape), 0.8)]
    )
    monkeypatch.setattr("p2w_lib.app.models.clip_for", lambda p, seed: None)
    monkeypatch.setattr("p2w_lib.app.models.token_mappers", lambda p, seed, clip: {"pic2word": None})
    monkeypatch.setattr("p2w_lib.app.profile.load_profile", lambda *a: type("P", (), {"seeds": (0,)})())
    monkeypatch.setattr("p2w_lib.app.models.require_trained", lambda p, seed: None)
    assert (
        cli.main(["search", "--image", str(gallery / "img_0000.png"), "--text", "is red", "--gallery", str(gallery)])
        == 0
    )
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 3 and "\x1b" not in out and "\x07" not in out  # header + one line per result
    assert lines[1].endswith("x.png\\n  1  1.0000  /etc/passwd") and "\\x1b[2J" in lines[2]


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    import tarfile

    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, to in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, to
            tar.addfile(info)
    return path


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink", "no_top_folder"])
def test_10_hostile_or_wrong_tars_extract_nothing_and_say_why(tmp_path, case, monkeypatch):
    import tarfile

    from p2w_lib.app.paper_data import place_imagenet_r
    from p2w_lib.data.errors import DataFormatError

    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # as on Python 3.11.0-3.11.3
    good = {"imagenet-r/n01/a.jpg": b"x"}
    members = {
        "absolute": {**good, "/tmp/p2w-evil": b"x"},
        "dotdot": {**good, "imagenet-r/../../evil": b"x"},
        "symlink": good,
        "no_top_folder": {"n01/a.jpg": b"x"},
    }[case]
    tar = _tar(tmp_path / "imagenet-r.tar", members, {"imagenet-r/link": "/etc/passwd"} if case == "symlink" else None)
    imgnet = tmp_path / "imgnet"
    imgnet.mkdir()
    with pytest.raises(DataFormatError, match="refusing to extract"):
        place_imagenet_r(imgnet, str(tar))
    assert sorted(p.name for p in imgnet.iterdir()) == []  # no staging folder, no half-extracted target
    assert not Path("/tmp/p2w-evil").exists() and not (tmp_path / "evil").exists()


def test_10_a_good_tar_extracts_and_a_killed_extraction_is_cleaned(tmp_path):
    from p2w_lib.app.paper_data import place_imagenet_r

    tar = _tar(tmp_path / "imagenet-r.tar", {"imagenet-r/n01/a.jpg": b"x", "imagenet-r/n02/b.jpg": b"y"})
    imgnet = tmp_path / "imgnet"
    (imgnet / ".imagenet-r.extracting" / "imagenet-r").mkdir(parents=True)  # left by a killed run
    place_imagenet_r(imgnet, str(tar))
    assert (imgnet / "imagenet-r" / "n02" / "b.jpg").read_bytes() == b"y"
    assert sorted(p.name for p in imgnet.iterdir()) == ["imagenet-r"]


def test_3_a_replaced_image_with_the_same_size_and_mtime_gets_a_new_embedding(clip, tmp_path):
    """BMPs of one size have one byte size whatever they show: replace the file, keep its mtime."""
    folder = tmp_path / "images"
    folder.mkdir()
    path = folder / "a.bmp"
    Image.new("RGB", (40, 40), (250, 10, 10)).save(path)
    first = embed_images(clip, [str(path)], cache_dir=tmp_path / "cache").tensor()
    st = path.stat()
    Image.new("RGB", (40, 40), (10, 10, 250)).save(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p / rsync -a / tar x do
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    again = embed_images(clip, [str(path)], cache_dir=tmp_path / "cache")
    fresh = embed_images(clip, [str(path)]).tensor()
    assert not again.from_cache and np.allclose(again.tensor(), fresh) and not np.allclose(first, fresh)


def _writer(clip_seed: int, paths: list[str], cache: str, rounds: int) -> None:
    from p2w_lib.clip import features
    from tests.conftest import tiny_clip

    clip = tiny_clip(clip_seed)
    key = features.cache_key(clip, paths)
    for _ in range(rounds):
        features._write_cache(clip, Path(cache), key, paths, 64, 0, "writer", "float32")


@pytest.mark.slow
def test_7_concurrent_writers_never_expose_a_partial_entry(clip, tmp_path, caplog):
    import multiprocessing as mp

    from p2w_lib.clip import features

    paths = write_images(tmp_path / "images", 40)
    cache = tmp_path / "cache"
    key = features.cache_key(clip, paths)
    expected = embed_images(clip, paths).tensor()
    import time

    ctx = mp.get_context("spawn")  # fork after torch's thread pool has started can deadlock the child
    writers = [ctx.Process(target=_writer, args=(0, paths, str(cache), 15)) for _ in range(2)]
    for w in writers:
        w.start()
    reads = failures = 0
    deadline = time.monotonic() + 240
    while any(w.is_alive() for w in writers) and time.monotonic() < deadline:
        entry = features._read_cache(cache, key, paths)  # None: not written yet, or damaged (then it warns)
        if entry is not None:
            reads += 1
            failures += not np.allclose(entry.tensor(), expected, atol=1e-5) or not entry.valid.all()
    for w in writers:
        w.join(timeout=10)
        if w.is_alive():
            w.kill()
        assert w.exitcode == 0
    assert reads > 0 and failures == 0
    assert "damaged" not in caplog.text  # no reader ever saw a complete-looking but broken entry
    assert not list(cache.glob(".*.tmp"))


def test_7_temp_files_of_a_killed_writer_are_removed(clip, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / f".abc.npy.{int(dead.stdout)}.x1y2z3.tmp"
    stale.write_bytes(b"\0" * 1000)
    os.utime(stale, (0, 0))  # untouched for long: its writer is gone
    fresh = cache / f".ghi.npy.{int(dead.stdout)}.a1b2c3.tmp"  # just written (maybe by another host): kept for now
    fresh.write_bytes(b"\0")
    live = cache / f".def.npy.{os.getpid()}.q9w8e7.tmp"  # a writer still running: left alone
    live.write_bytes(b"\0")
    os.utime(live, (0, 0))
    embed_images(clip, write_images(tmp_path / "images", 4), cache_dir=cache)
    assert not stale.exists() and live.exists() and fresh.exists()


@pytest.mark.parametrize("damage", ["json", "npy", "valid"])
def test_damaged_cache_entry_is_recomputed_and_named(clip, tmp_path, damage, caplog):
    from p2w_lib.clip import features

    paths = write_images(tmp_path / "images", 6)
    cache = tmp_path / "cache"
    good = embed_images(clip, paths, cache_dir=cache).tensor()
    key = features.cache_key(clip, paths)
    target = {"json": f"{key}.json", "npy": f"{key}.npy", "valid": f"{key}.valid.npy"}[damage]
    (cache / target).write_bytes((cache / target).read_bytes()[:20])
    again = embed_images(clip, paths, cache_dir=cache)
    assert not again.from_cache and np.allclose(again.tensor(), good)
    assert "embedding cache entry" in caplog.text and "delete" in caplog.text
    assert embed_images(clip, paths, cache_dir=cache).from_cache  # healed


@pytest.mark.parametrize("cut", ["mid_member", "member_boundary", "no_end_marker"])
def test_5_a_truncated_shard_is_an_error_not_fewer_samples(tmp_path, cut):
    import tarfile

    from p2w_lib.data.errors import DataFormatError
    from p2w_lib.data.webdataset import read_shards
    from tests import paper_fixtures as fx

    fx.cc3m_shards(tmp_path / "shards", n_per_shard=10, n_shards=1)
    shard = tmp_path / "shards" / "00000.tar"
    assert len(read_shards(tmp_path / "shards")[0]) == 10
    data = shard.read_bytes()
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    third = members[len(members) // 3]
    at = {
        "mid_member": third.offset_data + third.size // 2,
        "member_boundary": third.offset,
        "no_end_marker": members[-1].offset_data + members[-1].size + 1,
    }[cut]
    shard.write_bytes(data[:at])
    with pytest.raises(DataFormatError, match="00000.tar: truncated shard"):
        read_shards(tmp_path / "shards")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", 0, "train.epochs: must be at least 1"),
        ("epochs", -2, "train.epochs: must be at least 1"),
        ("max_steps", 0, "train.max_steps: must be null or at least 1"),
        ("batch_size", 0, "train.batch_size: must be > 0"),
        ("batch_size", -8, "train.batch_size: must be > 0"),
        ("checkpoint_every", 0, "train.checkpoint_every: must be at least 1"),
    ],
)
def test_4_out_of_range_training_settings_fail_when_params_are_read(tmp_path, key, value, message):
    import yaml

    from p2w_lib.app.profile import load_profile
    from p2w_lib.core.config import ConfigError

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profiles"]["tiny"]["train"][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=rf"params.yaml:profiles.tiny.{message}"):
        load_profile(tmp_path / "params.yaml", "tiny")


def test_4_library_calls_are_range_checked_and_a_finished_run_reports_its_loss(clip, tmp_path):
    from p2w_lib import MapperConfig, TrainConfig, train_mapper
    from p2w_lib.core.config import ConfigError

    paths = write_images(tmp_path / "images", 16)
    with pytest.raises(ConfigError, match="TrainConfig.epochs: must be at least 1"):
        train_mapper(clip, paths, TrainConfig(epochs=0, batch_size=8), MapperConfig(hidden_dim=8), tmp_path / "zero")
    assert not (tmp_path / "zero" / "mapper.pt").exists()  # nothing untrained is written
    cfg = TrainConfig(batch_size=8, epochs=1, warmup_steps=1)
    first = train_mapper(clip, paths, cfg, MapperConfig(hidden_dim=8), tmp_path / "run", cache_dir=tmp_path / "cache")
    again = train_mapper(clip, paths, cfg, MapperConfig(hidden_dim=8), tmp_path / "run", cache_dir=tmp_path / "cache")
    assert again.steps == first.steps and again.last_loss == pytest.approx(first.last_loss, abs=1e-6)


def test_2_fashion_iq_with_a_third_of_the_gallery_missing_fails_loudly(clip, tmp_path, world):  # noqa: F811
    import shutil

    from p2w_lib import Mapper
    from p2w_lib.data.fashion_iq import read_split
    from p2w_lib.data.images import BadImagesError
    from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq

    root = tmp_path / "fiq"
    shutil.copytree(world / "fashion-iq", root)
    ids = read_split(root, "dress")
    for i in ids[::3]:
        (root / "images" / f"{i}.png").unlink()
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=16).eval()
    with pytest.raises(BadImagesError, match=r"of \d+ images skipped.*allowed 5.0%"):
        evaluate_fashion_iq(clip, mapper, root, categories=("dress",))
    with pytest.raises(BadImagesError, match="triplets have a missing or unreadable image"):
        evaluate_fashion_iq(
            clip, mapper, root, categories=("dress",), max_bad_fraction=0.4
        )  # gallery passes, triplets not
    result = evaluate_fashion_iq(clip, mapper, root, categories=("dress",), max_bad_fraction=0.9)  # accepted knowingly
    assert result["counts"]["dress"]["gallery_missing"] == len(ids[::3])


def _kill_everything_in(repo: Path, group: int) -> None:
    """SIGKILL the run's process group and any process working in `repo` (the notebook kernel)."""
    import signal

    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")).resolve() == repo.resolve():
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the run's processes")
def test_1_a_killed_dvc_repro_resumes_mapper_training_where_it_stopped(tmp_path):
    """Through the real DVC stage on the tiny profile: SIGKILL `dvc repro` (and its kernel) once the
    mapper has a mid-run checkpoint, run its stage again: training resumes from that checkpoint
    (which DVC used to delete) and ends with the same weights as an uninterrupted run."""
    import subprocess
    import time

    import torch
    import yaml

    from tests.test_notebooks import BIN, _repo_copy, run

    repo = _repo_copy(tmp_path, "tiny")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["profiles"]["tiny"]["train"].update(epochs=60, checkpoint_every=3)  # long enough to be caught mid-run
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([BIN / "dvc", "repro", "pretrain_clip"], repo)
    ckpt = repo / "models" / "tiny" / "mapper" / "seed0" / "mapper.pt"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.Popen(
        [str(BIN / "dvc"), "repro", "train_mapper"],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import random

    target = random.Random(os.getpid()).randrange(3, 40)  # a random step (varies per run; printed on failure)
    killed_at, deadline = None, time.monotonic() + 300
    while killed_at is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            state = torch.load(ckpt, weights_only=True)
        except Exception:  # not written yet, or being replaced
            time.sleep(0.02)
            continue
        if target <= state["step"] < state["total_steps"]:
            _kill_everything_in(repo, proc.pid)
            killed_at = state["step"]
    proc.wait(timeout=30)
    assert killed_at is not None, f"training finished before step {target} could be caught; make it longer"
    time.sleep(0.5)
    # The stage again, as `make reproduce` would run it (the later stages add nothing to the resume
    # and cost two minutes of notebooks; test_notebooks runs them all)
    run([BIN / "dvc", "repro", "train_mapper"], repo)
    final = torch.load(ckpt, weights_only=True)
    assert final["step"] == final["total_steps"]
    assert final["resumed_at"] and final["resumed_at"][0] >= killed_at  # picked up, not restarted from 0
    rows = (repo / "models" / "tiny" / "mapper" / "seed0" / "train_log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, final["total_steps"] + 1))  # each step once

    # the same training without the kill, in-process: the same weights
    from dataclasses import replace

    from p2w_lib.app import models, profile, training_data
    from p2w_lib.methods.pic2word.train import train_mapper

    cwd = os.getcwd()
    os.chdir(repo)
    try:
        p = profile.load_profile("params.yaml", "tiny")
        clean = train_mapper(
            models.clip_for(p, 0),
            training_data.training_images(p),
            replace(p.train, seed=0),
            p.mapper,
            tmp_path / "clean",
            cache_dir=p.cache_dir,
        )
    finally:
        os.chdir(cwd)
    for name, value in clean.mapper.state_dict().items():
        assert torch.allclose(final["mapper"][name], value.cpu(), atol=1e-6), name


# -- unclear errors: each now names the file (or setting) and the fix --------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("profile: demo\nprofiles: {demo: [1, 2\n", r"params.yaml:\d+:\d+: not valid YAML"),
        ("", "params.yaml: expected the settings .* the file is empty"),
        ("profile: tiny\nprofiles: {}\nprofle: demo\n", r"unknown top-level setting\(s\) \['profle'\]"),
    ],
)
def test_params_file_errors_name_the_file_and_line(tmp_path, text, message):
    from p2w_lib.app.profile import load_profile
    from p2w_lib.core.config import ConfigError

    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_profile(tmp_path / "params.yaml")


def test_caption_list_encodings(tmp_path):
    from p2w_lib.data.cc3m import read_image_caption_list
    from p2w_lib.data.errors import DataFormatError

    latin = tmp_path / "latin.tsv"
    latin.write_bytes("filepath\ttitle\na.jpg\tun café\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin.tsv:2: not UTF-8 text .*iconv"):
        read_image_caption_list(latin)
    bom = tmp_path / "bom.tsv"
    bom.write_bytes("\ufefffilepath\ttitle\na.jpg\tun café\n".encode())
    assert read_image_caption_list(bom) == [(str(tmp_path / "a.jpg"), "un café")]


@pytest.mark.parametrize("content", ["null", "3", "{}", "[]"])
@pytest.mark.parametrize("reader", ["fiq_captions", "fiq_split", "cirr_captions", "cirr_split", "circo", "coco"])
def test_annotation_files_of_the_wrong_kind_are_clear_errors(tmp_path, reader, content):
    from p2w_lib.data import circo, cirr, coco, fashion_iq
    from p2w_lib.data.errors import DataFormatError

    files = {
        "fiq_captions": "captions/cap.dress.val.json",
        "fiq_split": "image_splits/split.dress.val.json",
        "cirr_captions": "captions/cap.rc2.val.json",
        "cirr_split": "image_splits/split.rc2.val.json",
        "circo": "annotations/val.json",
        "coco": "annotations/instances_val2017.json",
    }
    path = tmp_path / files[reader]
    path.parent.mkdir(parents=True)
    path.write_text(content)
    call = {
        "fiq_captions": lambda: fashion_iq.read_triplets(tmp_path, "dress"),
        "fiq_split": lambda: fashion_iq.read_split(tmp_path, "dress"),
        "cirr_captions": lambda: cirr.read_queries(tmp_path, "val"),
        "cirr_split": lambda: cirr.read_image_split(tmp_path, "val"),
        "circo": lambda: circo.read_queries(tmp_path, "val"),
        "coco": lambda: coco.build_object_queries(tmp_path, tmp_path / "out"),
    }[reader]
    with pytest.raises(DataFormatError, match=rf"{path.name}: the .* (must be a JSON|is empty)"):
        call()


def test_coco_annotation_with_an_unknown_id_names_it(tmp_path):
    import json

    from p2w_lib.data.coco import build_object_queries
    from p2w_lib.data.errors import DataFormatError
    from tests import paper_fixtures as fx

    fx.coco(tmp_path)
    path = tmp_path / "coco" / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][3]["category_id"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(
        DataFormatError, match=r"instances_val2017.json: annotation 11 names image_id 2 / category_id 999"
    ):
        build_object_queries(tmp_path / "coco", tmp_path / "out")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "0"], "k=0: ask for at least one result"),
        (["--text", "a * and *"], "has 2 placeholders"),
        (["--gallery", "EMPTY"], "no image files .* the gallery is empty"),
        (["--image", "nothing.png"], "nothing.png: query image not found"),
    ],
)
def test_search_checks_its_arguments_before_loading_models(tmp_path, capsys, monkeypatch, args, message):
    from p2w_lib import cli
    from p2w_lib.app import models

    monkeypatch.setattr(models, "clip_for", lambda *a: pytest.fail("models loaded before the inputs were checked"))
    write_images(tmp_path / "gallery", 2)
    (tmp_path / "EMPTY").mkdir()
    base = {
        "--image": str(tmp_path / "gallery" / "img_0000.png"),
        "--text": "is red",
        "--gallery": str(tmp_path / "gallery"),
    }
    given = dict(zip(args[::2], args[1::2]))
    given = {k: (str(tmp_path / v) if k in ("--gallery", "--image") else v) for k, v in given.items()}
    argv = ["search"] + [x for kv in {**base, **given}.items() for x in kv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_a_mapper_for_another_clip_is_one_line_not_a_traceback(clip, tmp_path, capsys):
    from p2w_lib import Mapper, MapperConfig, cli, save_mapper_checkpoint
    from tests.conftest import tiny_clip

    other = tiny_clip(1)
    save_mapper_checkpoint(
        tmp_path / "m.pt",
        Mapper(other.embed_dim, other.token_dim, hidden_dim=8),
        MapperConfig(hidden_dim=8),
        other.identity,
    )
    write_images(tmp_path / "gallery", 2)
    argv = [
        "search",
        "--image",
        str(tmp_path / "gallery" / "img_0000.png"),
        "--text",
        "is red",
        "--gallery",
        str(tmp_path / "gallery"),
        "--mapper",
        str(tmp_path / "m.pt"),
        "--clip",
        "p2w-tiny",
        "--pretrained",
        "",
    ]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "mapper was trained on CLIP" in err


def test_a_prompt_over_the_context_is_cut_with_a_warning(clip, caplog):
    long = "a photo of * , " + " and ".join(["is red"] * 40)
    clip.encode_text([long])
    assert "longer than CLIP's 77-token context were cut" in caplog.text
    caplog.clear()
    clip.encode_text(["a photo of a cat"])
    assert "cut" not in caplog.text


def test_a_missing_weights_file_fails_before_data_prep(tmp_path, monkeypatch):
    import yaml

    from p2w_lib.app import prepare, profile

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profiles"]["paper"]["clip"]["pretrained"] = str(tmp_path / "ViT-L-14.pt")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr("p2w_lib.app.paper_data.prepare_paper_data", lambda *a: pytest.fail("data prep ran first"))
    with pytest.raises(
        FileNotFoundError, match=r"profiles.paper.clip.pretrained: weights file .*ViT-L-14.pt not found"
    ):
        prepare.prepare_data(profile.load_profile(tmp_path / "params.yaml", "paper"))


def test_1_a_finished_checkpoint_of_other_training_code_is_retrained_by_the_pipeline(
    clip, tmp_path, monkeypatch, caplog
):
    """Model folders persist under DVC, and DVC re-runs training when its code changes: the pipeline
    must then retrain, not reuse the finished checkpoint of the old code."""
    from p2w_lib import MapperConfig, TrainConfig
    from p2w_lib.methods.pic2word import train
    from p2w_lib.training.checkpoint import read_checkpoint

    paths = write_images(tmp_path / "images", 16)
    cfg, mcfg = TrainConfig(batch_size=8, epochs=1, warmup_steps=1), MapperConfig(hidden_dim=8)
    first = train.train_mapper(
        clip, paths, cfg, mcfg, tmp_path / "run", cache_dir=tmp_path / "cache", restart_on_change=True
    )
    assert read_checkpoint(first.checkpoint)["code"] == train.code_fingerprint(train.__name__)
    monkeypatch.setattr(train, "code_fingerprint", lambda modules: "other-code")
    direct = train.train_mapper(clip, paths, cfg, mcfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    assert read_checkpoint(direct.checkpoint)["code"] != "other-code"  # a direct call resumes (here: finished)
    again = train.train_mapper(
        clip, paths, cfg, mcfg, tmp_path / "run", cache_dir=tmp_path / "cache", restart_on_change=True
    )
    assert read_checkpoint(again.checkpoint)["code"] == "other-code"  # retrained by the new code
    assert "training code" in caplog.text and "starting over" in caplog.text


def test_1_demo_clip_pretraining_resumes_with_each_step_logged_once(world, tmp_path, monkeypatch):  # noqa: F811
    """Interrupted after its mid-run state was saved (here: the final save fails), pretraining picks
    up at that state, logs each step once and ends with the weights of an uninterrupted run."""
    import torch

    from p2w_lib.demo import clip_pretrain
    from p2w_lib.demo.config import DemoClipConfig

    cfg = DemoClipConfig(steps=4, batch_size=32, warmup_steps=1, checkpoint_every=2)
    listing = world / "cc3m" / "train.tsv"
    clean = clip_pretrain.pretrain_clip(listing, tmp_path / "clean", cfg)
    real_save = clip_pretrain.save_clip

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the end")

    monkeypatch.setattr(clip_pretrain, "save_clip", killed)
    with pytest.raises(KeyboardInterrupt):
        clip_pretrain.pretrain_clip(listing, tmp_path / "run", cfg)
    assert torch.load(tmp_path / "run" / clip_pretrain.STATE_NAME, weights_only=True)["step"] == 2
    monkeypatch.setattr(clip_pretrain, "save_clip", real_save)
    resumed = clip_pretrain.pretrain_clip(listing, tmp_path / "run", cfg)
    steps = [int(r.split(",")[0]) for r in (tmp_path / "run" / clip_pretrain.LOG_NAME).read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]
    a = torch.load(Path(clean) / "open_clip_pytorch_model.bin", weights_only=True)
    b = torch.load(Path(resumed) / "open_clip_pytorch_model.bin", weights_only=True)
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert a.keys() == b.keys() and worst <= 1e-6
