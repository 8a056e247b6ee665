"""The benchmark registry: every benchmark the pipelines evaluate, in report order.

An entry names the benchmark (its results files are `metrics/<name>.json`), the notebook stage that
evaluates it, its headline metric for the summary files, and an adapter that reads a profile's paths
and evaluation settings and calls the protocol in `p2w_lib.protocols`. The protocols are the
library; these adapters are the application side.

Adding a benchmark: a protocol module, one adapter below, and one `Benchmark(...)` line in
`BENCHMARKS` (docs/extending.md shows one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.protocols import circo, cirr, coco_objects
from p2w_lib.protocols.domain_conversion import evaluate_domain_conversion
from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq


@dataclass(frozen=True)
class EvalContext:
    """One evaluation: the profile's settings and paths, the seed, its frozen CLIP, and the trained
    networks ({method: network}, or Pic2Word's mapper alone) that the protocols pass to compose_queries."""

    profile: Any  # app.profile.Profile (which reads this registry, so it is not imported here)
    seed: int
    clip: FrozenClip
    mapper: Any

    @property
    def common(self) -> dict[str, Any]:
        """The keyword arguments every protocol takes the same way."""
        p = self.profile
        return {"cache_dir": p.cache_dir, "max_bad_fraction": p.eval.max_bad_fraction}

    @property
    def labels(self) -> dict[str, Any]:
        """What a results document records about the run."""
        return {"profile": self.profile.name, "seed": self.seed}

    @property
    def writes_submissions(self) -> bool:
        """Test-server files are written once, for the headline seed, when switched on."""
        p = self.profile
        return p.eval.test_submissions and self.seed == p.seeds[0]

    @property
    def submissions_dir(self):
        return self.profile.results_dir / "submissions"


@dataclass(frozen=True)
class Benchmark:
    name: str
    stage: str  # the notebook stage that evaluates it: "04_domain_conversion", "05_fashion_iq", "08_more_benchmarks"
    evaluate: Callable[[EvalContext], dict]  # the results document of one seed
    summary_keys: tuple[str, ...] = ("R@10",)  # headline metric(s) of metrics/summary/<name>.json
    in_demo: bool = True  # the demo world writes an analogue of it (the demo profile scores it)


def _domain_conversion(ctx: EvalContext) -> dict:
    p = ctx.profile
    return evaluate_domain_conversion(
        ctx.clip,
        ctx.mapper,
        p.world_dir,
        p.source.rendition_domains,
        ks=p.eval.ks,
        oracle_texts=p.source.oracle_texts(p, "domain_conversion"),
        queries=p.eval.imagenet_r_queries,
        **ctx.common,
        **ctx.labels,
    )


def _fashion_iq(ctx: EvalContext) -> dict:
    p = ctx.profile
    return evaluate_fashion_iq(
        ctx.clip,
        ctx.mapper,
        p.world_dir / "fashion-iq",
        ks=p.eval.ks,
        oracle_texts=p.source.oracle_texts(p, "fashion_iq"),
        prompts=p.eval.prompts,
        **ctx.common,
        **ctx.labels,
    )


def _cirr(ctx: EvalContext) -> dict:
    root = ctx.profile.world_dir / "cirr"
    prompts = ctx.profile.eval.prompts
    result = cirr.evaluate_cirr(ctx.clip, ctx.mapper, root, prompts=prompts, **ctx.labels, **ctx.common)
    if ctx.writes_submissions and (root / "captions" / "cap.rc2.test1.json").is_file():  # the demo has no test1
        files = cirr.write_test_submission(
            ctx.clip, ctx.mapper, root, ctx.submissions_dir, prompts=prompts, **ctx.common
        )
        result["submissions"] = {k: str(v) for k, v in files.items()}
    return result


def _circo(ctx: EvalContext) -> dict:
    root = ctx.profile.world_dir / "circo"
    prompts = ctx.profile.eval.prompts
    result = circo.evaluate_circo(ctx.clip, ctx.mapper, root, prompts=prompts, **ctx.labels, **ctx.common)
    if ctx.writes_submissions and (root / "annotations" / "test.json").is_file():  # test queries ship separately
        path = circo.write_test_submission(
            ctx.clip, ctx.mapper, root, ctx.submissions_dir, prompts=prompts, **ctx.common
        )
        result["submissions"] = {"test": str(path)}
    return result


def _coco_objects(ctx: EvalContext) -> dict:
    p = ctx.profile
    return coco_objects.evaluate_coco_objects(
        ctx.clip,
        ctx.mapper,
        p.world_dir / "coco",
        p.prepared_dir / "coco",
        prompt=p.eval.coco_prompt,
        **ctx.labels,
        **ctx.common,
    )


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("domain_conversion", "04_domain_conversion", _domain_conversion),
        Benchmark("fashion_iq", "05_fashion_iq", _fashion_iq),
        Benchmark("cirr", "08_more_benchmarks", _cirr),
        Benchmark("circo", "08_more_benchmarks", _circo, summary_keys=("mAP@10",), in_demo=False),
        Benchmark("coco_objects", "08_more_benchmarks", _coco_objects, in_demo=False),
    )
}
BENCHMARK_NAMES: tuple[str, ...] = tuple(BENCHMARKS)


def benchmarks_of_stage(stage: str) -> tuple[str, ...]:
    """The benchmarks a notebook stage evaluates, in registry order."""
    names = tuple(name for name, b in BENCHMARKS.items() if b.stage == stage)
    if not names:
        stages = sorted({b.stage for b in BENCHMARKS.values()})
        raise KeyError(f"no benchmark is evaluated by stage {stage!r}; stages: {stages}")
    return names
