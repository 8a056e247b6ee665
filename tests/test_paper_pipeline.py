"""The paper profile end to end on fixtures in the real formats with a tiny random CLIP: data
preparation, mapper training (faithful re-encoding mode, a corrupt CC3M image skipped), every
evaluation and submission file, notebook 08 under papermill; and the paper pipeline's wiring."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from p2w_lib.app import downloads, evaluation, prepare, profile, tables, training
from p2w_lib.app.benchmarks import BENCHMARK_NAMES as PAPER_BENCHMARKS
from p2w_lib.app.readme import paper_section
from p2w_lib.cli import main as cli_main
from p2w_lib.protocols import circo
from tests import paper_fixtures as fx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHODS = {
    "image_only",
    "text_only",
    "image_text",
    "pic2word",
    "lincir",
    "slerp",
    "searle",
    "searle_oti",
    "combiner_fashion_iq",
    "combiner_cirr",
}
COMBINER_TINY = {"batch_size": 4, "epochs": 1, "projection_mult": 1, "hidden_mult": 2}  # CIRR's fixture: 4 triplets
LINCIR_TINY = {"batch_size": 8, "steps": 3, "hidden_mult": 1}
SEARLE_TINY = {
    "oti_images": None,
    "oti_steps": 2,
    "oti_batch_size": 8,
    "batch_size": 8,
    "steps": 3,
    "hidden_mult": 1,
    "phrases_per_concept": 4,
    "max_bad_fraction": 0.1,
}


def test_paper_profile_is_the_papers_recipe():
    p = profile.load_profile(ROOT / "params.yaml", "paper")
    assert (p.clip.model, p.clip.pretrained) == ("ViT-L-14", "openai")
    t = p.train
    # the original: 4 GPUs x 128 with features all-gathered for the loss = a contrastive batch of 512
    assert (t.batch_size, t.lr, t.weight_decay, t.epochs, t.warmup_steps) == (512, 1e-4, 0.1, 30, 10000)
    assert (t.betas, t.eps, t.crop_scale, t.prompt) == ((0.9, 0.98), 1e-6, (0.9, 1.0), "a photo of *")
    assert (p.mapper.hidden_dim, p.mapper.n_layers, p.mapper.dropout) == (512, 2, 0.1)
    c = (
        p.lincir
    )  # LinCIR's published recipe: 8 GPUs x 64, constant lr 1e-4, wd 0.01, 20k steps, phi 4x wide, dropout 0.5
    assert (c.enabled, c.batch_size, c.lr, c.weight_decay, c.steps, c.warmup_steps) == (True, 512, 1e-4, 0.01, 20000, 0)
    assert (c.hidden_mult, c.dropout, c.noise_scale) == (4, 0.5, 1.0)
    s = p.searle  # SEARLE's published recipe (README and argument defaults of oti_inversion.py, train_phi.py)
    assert (s.enabled, s.oti_images, s.oti_steps, s.oti_lr, s.oti_weight_decay, s.oti_batch_size, s.oti_top_k) == (
        True,
        100000,
        350,
        2e-2,
        0.01,
        32,
        15,
    )
    assert (s.oti_lambda_cos, s.oti_lambda_reg, s.ema_decay) == (1.0, 0.5, 0.99)
    assert (s.hidden_mult, s.dropout, s.batch_size, s.lr, s.weight_decay, s.steps) == (4, 0.5, 256, 1e-4, 0.01, 39000)
    assert (s.lambda_distil, s.lambda_reg, s.temperature, s.top_k) == (1.0, 0.75, 0.25, 150)
    b = p.combiner  # CLIP4Cir's recipe (combiner_train.py): Adam 2e-5, batch 1024, 300 epochs, 4x / 8x widths
    assert (b.fashion_iq, b.lr, b.batch_size, b.epochs, b.projection_mult, b.hidden_mult) == (
        True,
        2e-5,
        1024,
        300,
        4,
        8,
    )
    assert p.paper_data.benchmarks == PAPER_BENCHMARKS and p.results_dir == Path("results/paper")


def test_paper_pipeline_wiring():
    """Every paper stage runs the paper profile into results/paper; datasets are never DVC outputs."""
    stages = yaml.safe_load((ROOT / "pipelines/paper/pipeline.yaml").read_text())["stages"]
    assert list(stages) == [
        "prepare_data",
        "train_mapper",
        "train_lincir",
        "train_searle",
        "train_combiner",
        "searle_oti",
        "domain_conversion",
        "fashion_iq",
        "qualitative",
        "more_benchmarks",
    ]
    for name, stage in stages.items():
        assert stage["wdir"] == "../.." and stage["cmd"].endswith(" paper results/paper"), name
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", []) + stage.get("metrics", [])]
        assert all(o.startswith(("results/paper/", "models/paper/", "data/paper/prepared")) for o in outs), (name, outs)
        notebook = stage["cmd"].split()[2]
        assert (ROOT / "notebooks" / f"{notebook}.py").is_file()
    # results files are plain outputs here (declared metrics would warn on every demo clone)
    outs = {next(iter(o)) for s in stages.values() for o in s.get("outs", [])}
    assert {f"results/paper/metrics/{t}.json" for t in PAPER_BENCHMARKS} <= outs
    assert {f"results/paper/metrics/summary/{t}.json" for t in PAPER_BENCHMARKS} <= outs
    assert not any(s.get("metrics") for s in stages.values())


def test_check_profile_routes_each_kind_to_its_pipeline(tmp_path, capsys):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, kind in (("demo", "demo"), ("paper", "paper")):
        params["profile"] = name
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        assert cli_main(["check-profile", "--print-kind", "--params", str(tmp_path / "params.yaml")]) == 0
        assert capsys.readouterr().out.strip() == kind
    assert cli_main(["check-profile", "--kind", "demo", "--params", str(tmp_path / "params.yaml")]) == 2
    assert "pipelines/paper/dvc.yaml" in capsys.readouterr().err
    params["profile"] = "tiny"  # demo_profile left at demo: the demo pipeline would not run tiny
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli_main(["check-profile", "--print-kind", "--params", str(tmp_path / "params.yaml")]) == 2
    assert "set `demo_profile: tiny`" in capsys.readouterr().err


@pytest.fixture
def paper_repo(tmp_path, monkeypatch):
    """A working directory with params.yaml (profile paper on a tiny random CLIP) and the fixture data."""
    root, sources = tmp_path / "data" / "paper", tmp_path / "sources"
    lists = fx.paper_world(root, sources)
    monkeypatch.setattr(
        downloads,
        "PIC2WORD_IMAGENET_LISTS",
        tuple(downloads.RemoteFile(f"imgnet/{p.name}", p.as_uri(), downloads.sha256_file(p)) for p in lists.values()),
    )
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    paper = params["profiles"]["paper"]
    paper["clip"] = {"model": "p2w-tiny", "pretrained": None, "device": "cpu"}
    paper["mapper"]["hidden_dim"] = 32
    paper["train"].update(batch_size=8, epochs=2, warmup_steps=1, num_workers=0, max_bad_fraction=0.1)
    paper["lincir"].update(LINCIR_TINY)
    paper["searle"].update(SEARLE_TINY)
    paper["combiner"].update(COMBINER_TINY)
    paper["eval"]["max_bad_fraction"] = (
        0.4  # by design the fixture lacks 1 of 8 shirt images, so 2 of 6 shirt triplets fail
    )
    paper["paper_data"].update(
        imagenet_val=str(sources / "imagenet_val"),
        imagenet_r=str(sources / "imagenet-r.tar"),
        imagenet_lists=str(sources / "lists"),
    )
    params["profile"] = "paper"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_paper_evaluation_end_to_end_on_fixtures(paper_repo, caplog):
    caplog.set_level("INFO", logger="p2w_lib")
    p = profile.load_profile()
    report = prepare.prepare_data(p)
    assert report["domain_conversion"]["gallery"]["missing"] == 1

    run = training.train_seed(p, "pic2word", 0)
    assert p.train.augment_views == 4 and not p.train.recompute_image_features  # the paper default
    assert run.steps == 2 * (23 // 8)  # 24 listed images; the corrupt one is left out of every view's cache
    assert "view 4/4): 1 of 24 images skipped (e.g. data/paper/cc3m/images/00003.jpg" in caplog.text
    assert training.train_seed(p, "lincir", 0).steps == 3  # captions only: the corrupt image does not matter
    searle = training.train_seed(p, "searle", 0)  # the corrupt image is skipped and counted
    assert searle.steps == 3 and "embedding SEARLE's images: 1 of 24 images skipped" in caplog.text
    assert training.train_seed(p, "combiner_fashion_iq", 0).steps == 18 // 4  # 6 triplets per category
    assert training.train_seed(p, "combiner_cirr", 0).steps == 1  # 4 triplets, one caption each

    dc = evaluation.evaluate_domain_conversion_stage(p, 0)
    assert dc["n_gallery_skipped"] == 1 and set(dc["methods"]) == METHODS
    assert set(dc["methods"]["pic2word"]["per_domain"]) == {"cartoon", "origami", "toy", "sculpture"}
    fiq = evaluation.evaluate_fashion_iq_stage(p, 0)
    assert fiq["counts"]["shirt"]["evaluable"] == 4 and fiq["counts"]["shirt"]["skipped"] == 2
    more = evaluation.evaluate_more_benchmarks(p, 0)
    for task in (
        "CIRR val: 6 queries evaluated, 0 skipped",
        "CIRCO val: 5 queries",
        "COCO objects: 8 queries",
        "fashion-iq shirt: 4 triplets evaluated, 2 skipped",
        "domain conversion: 6 queries evaluated",
    ):
        assert task in caplog.text
    assert {"R@1", "R@5", "R@10", "Rs@1", "Rs@2", "Rs@3"} <= set(more["cirr"]["methods"]["pic2word"])
    assert {"mAP@5", "mAP@10"} <= set(more["circo"]["methods"]["pic2word"])
    assert more["coco_objects"]["n_queries"] == 8 and more["coco_objects"]["prompt"] == "with_class"
    assert set(more["circo"]["methods"]["pic2word"]["semantic_mAP@10"]) == set(circo.SEMANTIC_ASPECTS)
    assert dc["queries"] == "all" and set(dc["n_queries_without_relevant"]) == {
        "cartoon",
        "origami",
        "toy",
        "sculpture",
    }
    metrics = Path("results/paper/metrics")
    for task in PAPER_BENCHMARKS:
        saved = json.loads((metrics / f"{task}.json").read_text())
        assert saved["profile"] == "paper" and set(saved["methods"]) == METHODS, task
    subs = sorted(p.name for p in Path("results/paper/submissions").iterdir())
    assert subs == [
        "circo_test_pic2word.json",
        "cirr_test1_recall_pic2word.json",
        "cirr_test1_recall_subset_pic2word.json",
    ]
    section = paper_section("results/paper")
    assert "Beside the published ViT-L/14 numbers" in section
    assert "Ours are on CIRR val, the papers' on CIRR test1" in section and "| Pic2Word: ours, CIRR val |" in section
    assert (
        "| SEARLE-XL: published, CIRCO test | 11.68 | 12.73 |" in section and "LinCIR: Gu et al., CVPR 2024" in section
    )
    examples = tables.qualitative_examples(p, 0)
    assert len(examples["domain_conversion"]) == 3 and len(examples["fashion_iq"]) == 3  # 3 fixture classes
    assert all(len(ex["results"]["pic2word"]) == 5 for ex in examples["fashion_iq"])
    assert examples["cirr"] and all(len(ex["results"]["image_text"]) == 5 for ex in examples["cirr"])


@pytest.mark.slow
def test_switched_off_benchmark_says_so_and_notebook_08_runs(paper_repo):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["profiles"]["paper"]["paper_data"]["benchmarks"] = ["cirr"]
    params["profiles"]["paper"]["lincir"]["enabled"] = False  # and LinCIR, SEARLE switched off: not trained, not scored
    params["profiles"]["paper"]["searle"]["enabled"] = False
    params["profiles"]["paper"]["combiner"].update(fashion_iq=False, cirr=False)  # and both Combiners
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p = profile.load_profile()
    prepare.prepare_data(p)
    training.train_seed(p, "pic2word", 0)
    shutil.copytree(ROOT / "notebooks", "notebooks")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        ["bash", "notebooks/run_notebook.sh", "08_more_benchmarks", "paper", "results/paper"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path("results/paper/notebooks/08_more_benchmarks.html").is_file()
    circo = json.loads(Path("results/paper/metrics/circo.json").read_text())
    assert circo["skipped"].startswith("not in paper_data.benchmarks")
    assert set(json.loads(Path("results/paper/metrics/cirr.json").read_text())["methods"]) == METHODS - {
        "lincir",
        "searle",
        "combiner_fashion_iq",
        "combiner_cirr",
    }


@pytest.mark.slow
def test_dvc_repro_runs_the_paper_pipeline_on_fixtures(tmp_path):
    """`dvc repro pipelines/paper/dvc.yaml` end to end in a scratch repository; a second run re-checks
    the data and re-runs nothing else. (ImageNet-R is switched off: its lists are sha256-pinned to
    the published files, which a subprocess cannot swap for fixtures; the test above covers it.)"""
    from tests.test_notebooks import _repo_copy, run

    repo = _repo_copy(tmp_path, "paper")
    sources = tmp_path / "sources"
    fx.paper_world(repo / "data" / "paper", sources)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    paper = params["profiles"]["paper"]
    paper["clip"] = {"model": "p2w-tiny", "pretrained": None, "device": "cpu"}
    paper["mapper"]["hidden_dim"] = 32
    paper["train"].update(batch_size=8, epochs=1, warmup_steps=1, num_workers=0, max_bad_fraction=0.1)
    paper["lincir"].update(LINCIR_TINY)
    paper["searle"].update(SEARLE_TINY)
    paper["combiner"].update(COMBINER_TINY)
    paper["eval"].update(max_bad_fraction=0.4, ks=[1, 5])  # 2 of 6 shirt triplets lack an image; galleries hold 7 to 16
    paper["paper_data"]["benchmarks"] = ["fashion_iq", "cirr", "circo", "coco_objects"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    first = run([BIN / "dvc", "repro", "pipelines/paper/dvc.yaml"], repo).stdout
    for stage in (
        "prepare_data",
        "train_mapper",
        "train_lincir",
        "train_searle",
        "train_combiner",
        "searle_oti",
        "domain_conversion",
        "fashion_iq",
        "qualitative",
        "more_benchmarks",
    ):
        assert f"Running stage 'pipelines/paper/dvc.yaml:{stage}'" in first
    metrics = repo / "results" / "paper" / "metrics"
    assert json.loads((metrics / "domain_conversion.json").read_text())["skipped"].startswith("not in paper_data")
    for task in ("fashion_iq", "cirr", "circo", "coco_objects"):
        assert set(json.loads((metrics / f"{task}.json").read_text())["methods"]) == METHODS, task
    assert len(list((repo / "results" / "paper" / "submissions").glob("*.json"))) == 3
    figures = repo / "results" / "paper" / "figures"
    assert (figures / "qualitative_fashion_iq.png").stat().st_size > (
        figures / "qualitative_domain_conversion.png"
    ).stat().st_size
    # (Fashion-IQ: a grid of retrievals; ImageNet-R switched off: a one-line placeholder)
    assert not (repo / "results" / "metrics").exists()  # nothing of the demo's results is touched

    again = run([BIN / "dvc", "repro", "pipelines/paper/dvc.yaml"], repo).stdout
    assert "Running stage 'pipelines/paper/dvc.yaml:prepare_data'" in again  # always re-checks the data
    assert again.count("Running stage") == 1, again


@pytest.mark.slow
def test_pipeline_launches_torchrun_when_asked(paper_repo):
    """launch.nproc_per_node: 2 trains under torchrun, 8 images per process: the global batch of 16
    gives 24 // 16 = 1 step per epoch, and the checkpoint records the global batch."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["profiles"]["paper"]["launch"] = {"nproc_per_node": 2}
    params["profiles"]["paper"]["train"]["batch_size"] = 16
    params["profiles"]["paper"]["paper_data"]["benchmarks"] = ["fashion_iq"]
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p = profile.load_profile()
    prepare.prepare_data(p)
    runs = training.train_mappers(p)
    assert runs[0].steps == 2 and runs[0].checkpoint.is_file()
    assert Path("results/paper/plots/mapper_loss/seed0.csv").is_file()


def test_the_paper_pipeline_is_linked_for_dvc_only_when_asked(tmp_path):
    from p2w_lib.app.pipelines import PAPER, PAPER_SOURCE, PipelineLinkError, link_paper_pipeline

    tracked = subprocess.run(["git", "ls-files", "pipelines"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert tracked == [PAPER_SOURCE]  # no file DVC would collect on a demo clone
    ignored = subprocess.run(["git", "check-ignore", PAPER, "pipelines/paper/dvc.lock"], cwd=ROOT, capture_output=True)
    assert ignored.returncode == 0
    with pytest.raises(PipelineLinkError, match="missing"):
        link_paper_pipeline(tmp_path)
    (tmp_path / PAPER_SOURCE).parent.mkdir(parents=True)
    (tmp_path / PAPER_SOURCE).write_text("stages: {}\n")
    link = link_paper_pipeline(tmp_path)
    assert link.is_symlink() and os.readlink(link) == "pipeline.yaml" and link_paper_pipeline(tmp_path) == link
    link.unlink()
    link.write_text("edited\n")
    with pytest.raises(PipelineLinkError, match="regular file"):
        link_paper_pipeline(tmp_path)
    assert link.read_text() == "edited\n"  # never overwritten
