"""The application layer a user touches: the command line and the interactive composer."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from p2w_lib import Mapper, cli
from p2w_lib.app.search_widget import Composer
from p2w_lib.retrieval.gallery import search
from tests.conftest import write_images

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_program_name():
    out = subprocess.run([sys.executable, "-m", "p2w_lib", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("python -m p2w_lib 0.1.0")
    script = Path(sys.executable).parent / "p2w"
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=ROOT).stdout
    assert usage.startswith("usage: p2w ") and "python -m p2w_lib" not in usage.split("\n")[0]


def _all_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {a.dest}", a) for a in sub._actions)
        else:
            yield action.dest, action


def test_every_command_line_option_has_help_text():
    undocumented = [name for name, action in _all_actions(cli.build_parser("p2w")) if not action.help]
    assert not undocumented, f"options without help: {undocumented}"


def test_license_and_citation_match_the_package():
    import tomllib

    import yaml

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0" and "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["license"] == meta["license"] and citation["version"] == meta["version"]
    assert "Pic2Word" in citation["preferred-citation"]["title"] and citation["preferred-citation"]["year"] == 2023


@pytest.fixture
def trained(clip, tmp_path):
    torch.manual_seed(0)
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=16).eval()
    gallery = tmp_path / "gallery"
    write_images(gallery, 12, seed=3)
    return clip, mapper, gallery


def _trained_profile(monkeypatch, clip, networks: dict) -> None:
    """`search` without --mapper/--phi reads the profile's trained models: stand in `clip` and `networks`."""
    monkeypatch.setattr("p2w_lib.app.profile.load_profile", lambda *a: type("P", (), {"seeds": (0,)})())
    monkeypatch.setattr("p2w_lib.app.models.require_trained", lambda p, seed: None)
    monkeypatch.setattr("p2w_lib.app.models.clip_for", lambda p, seed: clip)
    monkeypatch.setattr("p2w_lib.app.models.token_mappers", lambda p, seed, c: dict(networks))  # fresh per call


def test_search_writes_a_grid_and_json(trained, tmp_path, capsys, monkeypatch):
    clip, mapper, gallery = trained
    _trained_profile(monkeypatch, clip, {"pic2word": mapper})
    query = gallery / "img_0000.png"
    argv = [
        "search",
        "--image",
        str(query),
        "--text",
        "is red",
        "--gallery",
        str(gallery),
        "--k",
        "4",
        "--out",
        str(tmp_path / "grid.png"),
        "--json",
    ]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = search(clip, mapper, query, "is red", gallery, k=4)
    assert [(r["path"], r["score"]) for r in printed["results"]] == [(p, round(s, 6)) for p, s in expected]
    assert printed["prompt"] == "a photo of * , is red"
    assert Image.open(tmp_path / "grid.png").width > 400


def test_search_with_a_phi_method_and_its_checkpoint(trained, tmp_path, capsys, monkeypatch):
    """--method searle --phi FILE (an official {"Phi": ...} release): composed with that phi's token."""
    from p2w_lib.methods.phi import Phi, PhiShape

    clip, _, gallery = trained
    phi = Phi(PhiShape(clip.embed_dim, 16, clip.token_dim, 0.5)).eval()
    torch.save({"epoch": 1, "Phi": phi.state_dict()}, tmp_path / "SEARLE.pt")
    monkeypatch.setattr("p2w_lib.cli.load_clip", lambda cfg: clip)
    query = gallery / "img_0000.png"
    argv = [
        "search",
        "--image",
        str(query),
        "--text",
        "is red",
        "--gallery",
        str(gallery),
        "--k",
        "4",
        "--json",
        "--method",
        "searle",
        "--phi",
        str(tmp_path / "SEARLE.pt"),
        "--clip",
        "p2w-tiny",
    ]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = search(clip, {"searle": phi}, query, "is red", gallery, k=4, method="searle")
    assert printed["method"] == "searle" and [r["path"] for r in printed["results"]] == [p for p, _ in expected]
    assert (
        cli.main([*argv[:-4], "--method", "lincir", "--phi", str(tmp_path / "SEARLE.pt")]) == 0
    )  # the same file as LinCIR's
    capsys.readouterr()
    torch.save(
        {"state_dict_img2text": Mapper(clip.embed_dim, clip.token_dim, hidden_dim=16).state_dict()},
        tmp_path / "pic2word.pt",
    )
    assert cli.main([*argv[:-6], "--method", "lincir", "--mapper", str(tmp_path / "pic2word.pt")]) == 2
    assert cli.main([*argv[:-6], "--method", "nearest", "--mapper", "m.pt"]) == 2
    assert cli.main([*argv[:-6], "--method", "image_text", "--phi", "p.pt"]) == 2
    assert cli.main([*argv[:-6], "--method", "searle_oti", "--mapper", "m.pt"]) == 2
    err = capsys.readouterr().err
    assert "choose one of image_only, text_only, image_text, slerp, pic2word, lincir, searle, searle_oti" in err
    assert "--method searle_oti fits the query's token by OTI" in err
    assert "--method lincir needs its trained network; pass --phi" in err
    assert "--phi is the network of lincir or searle" in err and "Traceback" not in err


def test_search_with_searle_oti_inverts_the_query_even_where_evaluation_leaves_it_off(trained, capsys, monkeypatch):
    clip, mapper, gallery = trained
    from p2w_lib.methods.phi import Phi, PhiShape

    stand_in = Phi(PhiShape(clip.embed_dim, 16, clip.token_dim, 0.5)).eval()  # any image -> token network
    _trained_profile(monkeypatch, clip, {"pic2word": mapper})
    monkeypatch.setattr("p2w_lib.app.models.oti_query_tokens", lambda p, seed, c: stand_in)
    query = gallery / "img_0000.png"
    argv = [
        "search",
        "--image",
        str(query),
        "--text",
        "is red",
        "--gallery",
        str(gallery),
        "--k",
        "4",
        "--json",
        "--method",
        "searle_oti",
    ]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = search(clip, {"searle_oti": stand_in}, query, "is red", gallery, k=4, method="searle_oti")
    assert printed["method"] == "searle_oti" and [r["path"] for r in printed["results"]] == [p for p, _ in expected]


def test_search_with_the_approximate_index_ranks_as_exact_search_and_stores_it(trained, tmp_path, capsys, monkeypatch):
    clip, mapper, gallery = trained
    for i in range(12, 100):  # enough images for two k-means cells: a real IVF index, scanned fully at nprobe 2
        write_images(tmp_path / "more", 1, seed=i)[0]
        (tmp_path / "more" / "img_0000.png").rename(gallery / f"extra_{i:03d}.png")
    _trained_profile(monkeypatch, clip, {"pic2word": mapper})
    query, cache = gallery / "img_0000.png", tmp_path / "cache"
    argv = [
        "search",
        "--image",
        str(query),
        "--text",
        "is red",
        "--gallery",
        str(gallery),
        "--k",
        "5",
        "--json",
        "--index",
        "approx",
        "--nprobe",
        "2",
        "--cache-dir",
        str(cache),
    ]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = search(clip, mapper, query, "is red", gallery, k=5)
    assert [r["path"] for r in printed["results"]] == [p for p, _ in expected]
    assert len(list(cache.glob("*.faiss"))) == 1
    assert cli.main([*argv[:-6], "--index", "approx", "--nprobe", "0"]) == 2
    assert "--nprobe 0" in capsys.readouterr().err


def test_search_with_slerp_at_a_chosen_alpha_ranks_by_the_formula(trained, capsys, monkeypatch):
    """--alpha reaches the composition: the ranking is the gallery ordered by cosine with the Slerp
    query written out from the formula (tests/slerp_reference.py) at that alpha."""
    from p2w_lib.clip.features import embed_images
    from p2w_lib.methods.base import text_only_prompt
    from p2w_lib.retrieval.gallery import build_prompt, embed_query, gallery_files
    from tests.slerp_reference import slerp_reference

    clip, mapper, gallery = trained
    _trained_profile(monkeypatch, clip, {})
    query = gallery / "img_0002.png"
    image = torch.nn.functional.normalize(embed_query(clip, query)[0].float(), dim=-1)  # [D]
    text = clip.encode_text([text_only_prompt(build_prompt("is red"))], normalize=True)[0].float()  # [D]
    files = gallery_files(gallery)
    feats = embed_images(clip, files).tensor(normalize=True)  # [N, D]
    for alpha in (0.3, 0.9):
        argv = [
            "search",
            "--image",
            str(query),
            "--text",
            "is red",
            "--gallery",
            str(gallery),
            "--k",
            "5",
            "--json",
            "--method",
            "slerp",
            "--alpha",
            str(alpha),
        ]
        assert cli.main(argv) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["alpha"] == alpha
        scores = feats @ slerp_reference(image, text, alpha)  # [N]
        best = scores.argsort(descending=True)[:5].tolist()
        assert [r["path"] for r in printed["results"]] == [files[i] for i in best]
        assert [r["score"] for r in printed["results"]] == pytest.approx(scores[best].tolist(), abs=1e-5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--alpha", "0.5"], "pass --method slerp"),
        (["--method", "slerp", "--alpha", "1.5"], "must lie in [0, 1]"),
    ],
)
def test_search_refuses_an_alpha_it_cannot_use_before_loading_models(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("p2w_lib.app.models.clip_for", lambda *a: pytest.fail("models loaded first"))
    write_images(tmp_path / "gallery", 2)
    argv = [
        "search",
        "--image",
        str(tmp_path / "gallery" / "img_0000.png"),
        "--text",
        "is red",
        "--gallery",
        str(tmp_path / "gallery"),
        *extra,
    ]
    assert cli.main(argv) == 2 and message in capsys.readouterr().err


def test_search_without_a_trained_model_says_to_run_make_reproduce(tmp_path, capsys):
    params = ROOT / "params.yaml"
    write_images(tmp_path / "gallery", 2)
    argv = [
        "search",
        "--image",
        str(tmp_path / "gallery" / "img_0000.png"),
        "--text",
        "is red",
        "--gallery",
        str(tmp_path / "gallery"),
        "--params",
        str(params),
        "--profile",
        "tiny",
    ]
    cwd = Path.cwd()
    try:
        import os

        os.chdir(tmp_path)  # no models/ here
        code = cli.main(argv)
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert code == 2 and "make reproduce" in err and "--mapper" in err and "Traceback" not in err


def test_search_refuses_a_grid_name_that_is_not_png_before_loading_models(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("p2w_lib.app.models.clip_for", lambda *a: pytest.fail("models loaded first"))
    write_images(tmp_path / "gallery", 2)
    argv = [
        "search",
        "--image",
        str(tmp_path / "gallery" / "img_0000.png"),
        "--text",
        "is red",
        "--gallery",
        str(tmp_path / "gallery"),
        "--out",
        str(tmp_path / "grid.jpg"),
    ]
    assert cli.main(argv) == 2 and ".png" in capsys.readouterr().err


def test_composer_callback_ranks_as_search_does_and_draws_the_grid(trained, tmp_path):
    clip, mapper, gallery = trained
    composer = Composer(clip, mapper, gallery, k=3)
    query = str(gallery / "img_0005.png")
    results = composer.run(image=query, text="is red with a white logo")
    for method in ("pic2word", "image_text"):  # the same ranking as the tested search() path
        assert results[method] == search(clip, mapper, query, "is red with a white logo", gallery, k=3, method=method)
    assert composer.figure is not None and len(composer.figure.axes) == 2 * 4  # 2 methods x (query + top 3)
    other = tmp_path / "other"
    write_images(other, 5, seed=9)
    moved = composer.run(gallery=other, text="a sketch of *", k=2)
    assert all(Path(p).parent == other for hits in moved.values() for p, _ in hits) and len(moved["pic2word"]) == 2


def test_composer_widget_updates_on_events_and_reports_bad_text(trained):
    pytest.importorskip("ipywidgets")
    clip, mapper, gallery = trained
    composer = Composer(clip, mapper, gallery, k=2, text="is blue")
    box = composer.widget  # built and searched once
    first = composer.results
    composer._refresh(text="a sketch of *")  # what typing into the text box triggers
    assert composer.results != first or composer.text == "a sketch of *"
    status = box.children[-2]
    composer._refresh(text="a * and *")
    assert "placeholders" in status.value  # a bad text is a message in the widget, not a traceback
    upload = Image.new("RGB", (40, 40), (200, 10, 10))
    import io

    buf = io.BytesIO()
    upload.save(buf, format="PNG")
    path = composer.upload("mine.png", buf.getvalue())
    composer._refresh(image=path, text="is red")
    assert composer.image == path and len(composer.results["pic2word"]) == 2


def test_composer_displays_as_its_widget_with_words_for_where_no_kernel_draws_it(trained):
    pytest.importorskip("ipywidgets")
    clip, mapper, gallery = trained
    composer = Composer(clip, mapper, gallery, k=2, text="is blue")
    bundle = composer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == composer.widget.model_id
    words = bundle["text/plain"]
    assert words == composer.describe() and "top 2 of Pic2Word and image + text" in words
    assert "'is blue'" in words and f"{len(composer.index.files)} images" in words


def test_composer_widget_follows_the_gallery_shows_uploads_and_clears_a_stale_grid(trained, tmp_path):
    import gc
    import io

    pytest.importorskip("ipywidgets")
    clip, mapper, gallery = trained
    composer = Composer(clip, mapper, gallery, k=10, text="is blue")
    box = composer.widget
    pick, out, status = box.children[0].children[0], box.children[-1], box.children[-2]
    assert [v for _, v in pick.options] == composer.index.files and pick.value == composer.image
    assert len(composer.figure.axes) == 2 * 2 * 6  # k = 10: two rows of five per method, beside the query
    assert "Enter" in box.children[-3].value  # the UI says when it searches

    other = tmp_path / "other"
    write_images(other, 4, seed=9)
    composer._refresh(gallery=str(other))  # typing a folder into the gallery box
    assert [v for _, v in pick.options] == composer.index.files and all(
        Path(f).parent == other for f in composer.index.files
    )
    assert pick.value is None and "4 images" in status.value  # the old query is from the old gallery

    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(buf, format="PNG")
    first = composer.upload("mine.png", buf.getvalue())
    composer._refresh(image=first)
    assert "uploaded mine.png" in status.value and pick.value is None
    second = composer.upload("again.png", buf.getvalue())
    assert not Path(first).exists() and [p.name for p in Path(second).parent.iterdir()] == ["again.png"]

    cleared = []  # without a kernel an Output widget captures nothing, so watch it being cleared
    out.clear_output = lambda wait=False: cleared.append(wait)
    composer._refresh(text="a * and *")
    assert "placeholders" in status.value and cleared == [False]  # the message, and no stale grid under it

    uploads = Path(second).parent
    composer.close()
    assert not uploads.exists() and box.comm is None and pick.comm is None
    dropped = Composer(clip, mapper, gallery, k=2)  # never closed: its uploads go when it is collected
    folder = dropped._uploads
    del dropped
    gc.collect()
    assert not folder.exists()
