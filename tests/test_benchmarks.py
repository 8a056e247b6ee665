"""The benchmark registry: one list the pipelines, reports and data preparation all read."""
from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from p2w_lib import paper_data, pipeline, readme, rehearsal
from p2w_lib.benchmarks import BENCHMARK_NAMES, BENCHMARKS, Benchmark, EvalContext, benchmarks_of_stage
from p2w_lib.paper_data import PaperDataConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_each_benchmark_is_evaluated_by_a_stage_of_the_paper_pipeline(name):
    b = BENCHMARKS[name]
    assert b.name == name and b.summary_keys
    assert (ROOT / "notebooks" / f"{b.stage}.ipynb").is_file()
    stages = yaml.safe_load((ROOT / "pipelines" / "paper" / "dvc.yaml").read_text())["stages"]
    outs = {str(o) if not isinstance(o, dict) else next(iter(o)) for s in stages.values() for o in s.get("outs", [])}
    assert any(o.endswith(f"metrics/{name}.json") for o in outs), f"no paper stage writes {name}'s results"


def test_the_registry_replaces_every_list_of_benchmark_names():
    assert PaperDataConfig().benchmarks == BENCHMARK_NAMES
    for module in (pipeline, readme, rehearsal, paper_data):
        source = inspect.getsource(module)
        assert '"circo", "coco_objects"' not in source, f"{module.__name__} keeps its own list of benchmarks"
    assert benchmarks_of_stage("08_more_benchmarks") == ("cirr", "circo", "coco_objects")


def test_an_unknown_stage_names_the_known_ones():
    with pytest.raises(KeyError, match="08_more_benchmarks"):
        benchmarks_of_stage("09_nothing")


def test_an_unknown_benchmark_in_params_is_refused_with_the_registered_names(tmp_path):
    with pytest.raises(ValueError, match=r"unknown \['imagenet_a'\]; choose from .*coco_objects"):
        paper_data.prepare_paper_data(tmp_path, PaperDataConfig(benchmarks=("domain_conversion", "imagenet_a")))


def test_a_registered_benchmark_runs_through_the_pipeline_and_writes_its_summary(monkeypatch, tmp_path):
    """Registering one more benchmark is one line: the pipeline evaluates it with the context and
    records its headline metric under the name it was registered with."""
    seen = {}

    def toy(ctx: EvalContext) -> dict:
        seen["ctx"] = ctx
        return {"profile": ctx.profile.name, "seed": ctx.seed, "metric": "recall",
                "methods": {"pic2word": {"R@1": 40.0, "R@5": 70.0}}}

    monkeypatch.setitem(BENCHMARKS, "toy", Benchmark("toy", "08_more_benchmarks", toy, summary_keys=("R@5",)))
    p = replace(pipeline.load_profile(ROOT / "params.yaml", "tiny"), results_root=str(tmp_path / "results"))
    (tmp_path / "results" / "metrics" / "summary").mkdir(parents=True)
    result = pipeline.evaluate_benchmark(p, "toy", 0, clip="a clip", mapper="a mapper")
    assert result["methods"]["pic2word"]["R@5"] == 70.0
    assert (seen["ctx"].clip, seen["ctx"].mapper, seen["ctx"].seed) == ("a clip", "a mapper", 0)
    assert seen["ctx"].common == {"cache_dir": p.cache_dir, "max_bad_fraction": p.eval.max_bad_fraction}
    summary = json.loads((tmp_path / "results" / "metrics" / "summary" / "toy.json").read_text())
    assert summary["p2w"] == 70.0  # the R@5 it was registered with, not the default R@10
