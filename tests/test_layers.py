"""The library (CLIP, mappers, composition, retrieval, metrics, protocols) stays importable without
the application (pipeline stages, CLI, reports, figures, demo, data downloads), as open_clip keeps
its library apart from its training app. Checked on every import, lazy ones inside functions too."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_closure import closure

ROOT = Path(__file__).resolve().parents[1]

LIBRARY = (
    "p2w_lib.clip_backbone", "p2w_lib.pretrained_weights", "p2w_lib.config", "p2w_lib.mapper", "p2w_lib.checkpoint",
    "p2w_lib.composed", "p2w_lib.prefix_cache", "p2w_lib.queries", "p2w_lib.features", "p2w_lib.loss", "p2w_lib.train",
    "p2w_lib.retrieval", "p2w_lib.ann", "p2w_lib.search", "p2w_lib.metrics", "p2w_lib.phi", "p2w_lib.keywords", "p2w_lib.lincir",
    "p2w_lib.loop", "p2w_lib.phi_runs", "p2w_lib.concepts", "p2w_lib.oti", "p2w_lib.searle", "p2w_lib.oti_queries",
    "p2w_lib.slerp", "p2w_lib.results_schema", "p2w_lib.reference_numbers",
    "p2w_lib.protocols.domain_conversion", "p2w_lib.protocols.fashion_iq", "p2w_lib.protocols.cirr",
    "p2w_lib.protocols.circo", "p2w_lib.protocols.coco_objects", "p2w_lib.protocols.submissions",
)
APPLICATION = (
    "p2w_lib/pipeline.py", "p2w_lib/benchmarks.py", "p2w_lib/cli.py", "p2w_lib/__main__.py", "p2w_lib/report.py",
    "p2w_lib/readme.py", "p2w_lib/figures.py", "p2w_lib/qualitative.py", "p2w_lib/notebook_outputs.py",
    "p2w_lib/downloads.py", "p2w_lib/paper_data.py", "p2w_lib/rehearsal.py", "p2w_lib/bench.py", "p2w_lib/smoke.py",
    "p2w_lib/demo/",
)


@pytest.mark.parametrize("module", LIBRARY)
def test_a_library_module_never_reaches_the_application(module):
    reached = closure(ROOT, {module})
    assert f"{module.replace('.', '/')}.py" in reached  # the module exists under that name
    leaks = sorted(f for f in reached if f.startswith(APPLICATION))
    assert not leaks, f"{module} imports application code (at any depth): {leaks}"


def test_the_check_sees_a_leak():
    assert "p2w_lib/demo/clip_pretrain.py" in closure(ROOT, {"p2w_lib.pipeline"})
