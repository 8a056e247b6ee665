"""The evaluation stages: score every registered benchmark the profile evaluates, per seed, and
record the results files; and the SEARLE-OTI stage, which inverts those benchmarks' query images.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import replace

from p2w_lib.app import models
from p2w_lib.app.benchmarks import BENCHMARKS, EvalContext, benchmarks_of_stage
from p2w_lib.app.report import summary_metrics
from p2w_lib.app.training import _switch_note
from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.core.files import atomic_write_json
from p2w_lib.training.checkpoint import CheckpointError

log = logging.getLogger(__name__)


def _stage_benchmarks(p) -> tuple[str, ...]:
    """The registered benchmarks the profile's evaluation stages score, in registry order: the paper's
    switched on in paper_data.benchmarks; the demo's those its world has an analogue of."""
    return p.source.evaluated(p)


def invert_query_images(p) -> dict[int, int]:
    """The searle_oti stage: per seed, SEARLE-OTI's token of every reference image the evaluation
    stages compose from ({seed: images inverted}), saved where token_mappers reads it.

    It runs each benchmark's protocol with SEARLE-OTI alone, so the images come in the order an
    evaluation presents them; those results go to a scratch folder and are discarded (the test-server
    files are Pic2Word's, so no test query is inverted). The store is saved after each benchmark: a
    stopped stage resumes from it.
    Switched off (`eval.searle_oti: false`), it inverts nothing and leaves a note."""
    counts: dict[int, int] = {}
    if not _switch_note(
        p.models_dir / "searle_oti",
        p.eval.searle_oti,
        "eval.searle_oti is false in params.yaml: no query image was inverted",
    ):
        return counts
    for seed in p.seeds:
        clip, store = models.clip_for(p, seed), p.oti_store_path(seed)
        oti = models.oti_query_tokens(p, seed, clip)
        try:
            resumed = oti.load(store, report_misses=False) if store.is_file() else 0
        except CheckpointError as err:  # made with an earlier CLIP or other settings: start over
            log.warning("%s; inverting again", err)
            resumed = 0
        with tempfile.TemporaryDirectory(prefix="searle_oti_") as scratch:
            scratch_p = replace(p, results_root=scratch, eval=replace(p.eval, test_submissions=False))
            for name in _stage_benchmarks(p):
                BENCHMARKS[name].evaluate(EvalContext(scratch_p, seed, clip, {"searle_oti": oti}))
                oti.save(store)
        counts[seed] = len(oti.tokens) - resumed
        log.info("seed %d: %d query images in %s (%d inverted now)", seed, len(oti.tokens), store, counts[seed])
    return counts


def _switched_off(p, task: str, seed: int) -> dict | None:
    """The results document of a paper benchmark left out of paper_data.benchmarks (else None)."""
    if p.source.switched_on(p, task):
        return None
    result = {"profile": p.name, "seed": seed, "skipped": "not in paper_data.benchmarks (params.yaml)"}
    _record(p, task, seed, result)
    return result


def evaluate_benchmark(p, name: str, seed: int, clip: FrozenClip | None = None, mapper=None) -> dict:
    """Evaluate one registered benchmark for `seed` and record its results files (see benchmarks.py)."""
    if (skipped := _switched_off(p, name, seed)) is not None:
        return skipped
    clip = clip or models.clip_for(p, seed)
    ctx = EvalContext(
        profile=p, seed=seed, clip=clip, mapper=mapper if mapper is not None else models.token_mappers(p, seed, clip)
    )
    result = BENCHMARKS[name].evaluate(ctx)
    _record(p, name, seed, result)
    return result


def evaluate_domain_conversion_stage(p, seed: int, clip: FrozenClip | None = None) -> dict:
    return evaluate_benchmark(p, "domain_conversion", seed, clip)


def evaluate_fashion_iq_stage(p, seed: int, clip: FrozenClip | None = None) -> dict:
    return evaluate_benchmark(p, "fashion_iq", seed, clip)


def evaluate_more_benchmarks(p, seed: int) -> dict[str, dict]:
    """Notebook 08's benchmarks (CIRR, CIRCO, COCO object composition) that the profile scores, plus
    the CIRR/CIRCO test submission files. In the paper profile a benchmark left out of
    paper_data.benchmarks gets a results file that says so; the demo has only its CIRR analogue."""
    clip = models.clip_for(p, seed)
    mapper = models.token_mappers(p, seed, clip)
    (p.results_dir / "submissions").mkdir(parents=True, exist_ok=True)  # a DVC out even when no file is written
    names = [
        n
        for n in benchmarks_of_stage("08_more_benchmarks")
        if p.source.switched_on(p, n) or p.source.records_switched_off
    ]
    return {name: evaluate_benchmark(p, name, seed, clip, mapper) for name in names}


def _record(p, task: str, seed: int, result: dict) -> None:
    """Write the first seed's result as the headline file; every seed's into the all-seeds file."""
    if seed == p.seeds[0]:
        atomic_write_json(p.metrics_path(task), result)
    path = p.all_seeds_path(task)
    everything = json.loads(path.read_text()) if path.is_file() else {"profile": p.name, "seeds": {}}
    if everything.get("profile") != p.name:
        everything = {"profile": p.name, "seeds": {}}
    everything["seeds"][str(seed)] = result
    everything["seeds"] = {k: everything["seeds"][k] for k in sorted(everything["seeds"], key=int) if int(k) in p.seeds}
    atomic_write_json(path, everything)
    atomic_write_json(p.summary_path(task), summary_metrics(everything, BENCHMARKS[task].summary_keys))
