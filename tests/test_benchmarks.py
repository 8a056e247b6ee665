"""The registries of benchmarks and query methods: one list each that pipelines, protocols, reports and
data preparation all read."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from p2w_lib.app import evaluation, paper_data, profile, readme, sources
from p2w_lib.app.benchmarks import (
    BENCHMARK_NAMES,
    BENCHMARKS,
    Benchmark,
    EvalContext,
    benchmarks_of_stage,
)
from p2w_lib.app.paper_data import PaperDataConfig
from p2w_lib.app.report import METHOD_LABELS
from p2w_lib.methods.combiner.network import Combiner, CombinerShape
from p2w_lib.methods.pic2word.config import MapperConfig
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import METHODS, QUERY_METHODS, compose_queries
from p2w_lib.tools import rehearsal

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_each_benchmark_is_evaluated_by_a_stage_of_the_paper_pipeline(name):
    b = BENCHMARKS[name]
    assert b.name == name and b.summary_keys
    assert (ROOT / "notebooks" / f"{b.stage}.py").is_file()
    stages = yaml.safe_load((ROOT / "pipelines" / "paper" / "pipeline.yaml").read_text())["stages"]
    outs = {str(o) if not isinstance(o, dict) else next(iter(o)) for s in stages.values() for o in s.get("outs", [])}
    assert any(o.endswith(f"metrics/{name}.json") for o in outs), f"no paper stage writes {name}'s results"


def test_the_registry_replaces_every_list_of_benchmark_names():
    assert PaperDataConfig().benchmarks == BENCHMARK_NAMES
    for module in (profile, sources, evaluation, readme, rehearsal, paper_data):
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
        return {
            "profile": ctx.profile.name,
            "seed": ctx.seed,
            "metric": "recall",
            "methods": {"pic2word": {"R@1": 40.0, "R@5": 70.0}},
        }

    monkeypatch.setitem(BENCHMARKS, "toy", Benchmark("toy", "08_more_benchmarks", toy, summary_keys=("R@5",)))
    p = replace(profile.load_profile(ROOT / "params.yaml", "tiny"), results_root=str(tmp_path / "results"))
    (tmp_path / "results" / "metrics" / "summary").mkdir(parents=True)
    result = evaluation.evaluate_benchmark(p, "toy", 0, clip="a clip", mapper="a mapper")
    assert result["methods"]["pic2word"]["R@5"] == 70.0
    assert (seen["ctx"].clip, seen["ctx"].mapper, seen["ctx"].seed) == ("a clip", "a mapper", 0)
    assert seen["ctx"].common == {"cache_dir": p.cache_dir, "max_bad_fraction": p.eval.max_bad_fraction}
    summary = json.loads((tmp_path / "results" / "metrics" / "summary" / "toy.json").read_text())
    assert summary["p2w"] == 70.0  # the R@5 it was registered with, not the default R@10


# -- the query-method registry ---------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_each_query_method_gives_one_unit_vector_per_query(name, clip):
    net = Mapper.from_config(MapperConfig(hidden_dim=16), clip.embed_dim, clip.token_dim)  # any image -> token network
    fusion = Combiner(CombinerShape(clip.embed_dim, 16, 32))  # a supervised method's (image, text) -> query network
    mappers = {n: fusion if "combiner" in m.training.sections else net for n, m in QUERY_METHODS.items() if m.trained}
    feats = torch.randn(5, clip.embed_dim)
    out = compose_queries(clip, mappers, feats, ["a sketch of *"] * 3 + ["a photo of * , is red"] * 2, methods=[name])
    assert list(out) == [name] and out[name].shape == (5, clip.embed_dim)
    assert torch.allclose(out[name].norm(dim=-1), torch.ones(5), atol=1e-5)
    assert QUERY_METHODS[name].label in METHOD_LABELS.values()


def test_methods_share_one_text_encoding_and_come_back_in_registry_order(clip, monkeypatch):
    from p2w_lib.methods import base as queries

    calls = []
    real = queries.encode_unique_texts
    monkeypatch.setattr(queries, "encode_unique_texts", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = compose_queries(
        clip,
        None,
        torch.randn(2, clip.embed_dim),
        ["a sketch of *"] * 2,
        methods=["slerp", "image_text", "text_only", "image_only"],
    )
    assert list(out) == ["image_only", "text_only", "image_text", "slerp"] and len(calls) == 1
    with pytest.raises(ValueError, match=r"unknown query method\(s\) \['lerp'\]; choose from"):
        compose_queries(clip, None, torch.randn(2, clip.embed_dim), ["a sketch of *"] * 2, methods=["lerp"])
