"""The library (CLIP, mappers, composition, retrieval, metrics, protocols) stays importable without
the application (pipeline stages, CLI, reports, figures, demo, data downloads), as open_clip keeps
its library apart from its training app. Checked on every import, lazy ones inside functions too."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_closure import closure

ROOT = Path(__file__).resolve().parents[1]

LIBRARY = (
    "p2w_lib.clip.backbone", "p2w_lib.clip.weights", "p2w_lib.core.config", "p2w_lib.methods.pic2word.network", "p2w_lib.training.checkpoint",
    "p2w_lib.clip.composed", "p2w_lib.clip.prefix_cache", "p2w_lib.methods.registry", "p2w_lib.clip.features", "p2w_lib.training.loss", "p2w_lib.methods.pic2word.train",
    "p2w_lib.retrieval.topk", "p2w_lib.retrieval.faiss_index", "p2w_lib.retrieval.gallery", "p2w_lib.retrieval.metrics", "p2w_lib.methods.phi", "p2w_lib.methods.lincir.keywords", "p2w_lib.methods.lincir.train",
    "p2w_lib.training.loop", "p2w_lib.methods.phi_runs", "p2w_lib.methods.searle.concepts", "p2w_lib.methods.searle.oti", "p2w_lib.methods.searle.train", "p2w_lib.methods.searle_oti",
    "p2w_lib.methods.slerp", "p2w_lib.protocols.results_schema", "p2w_lib.protocols.published",
    "p2w_lib.protocols.domain_conversion", "p2w_lib.protocols.fashion_iq", "p2w_lib.protocols.cirr",
    "p2w_lib.protocols.circo", "p2w_lib.protocols.coco_objects", "p2w_lib.protocols.submissions",
)
APPLICATION = (
    "p2w_lib/app/pipeline.py", "p2w_lib/app/benchmarks.py", "p2w_lib/app/cli.py", "p2w_lib/__main__.py", "p2w_lib/app/report.py",
    "p2w_lib/app/readme.py", "p2w_lib/app/figures.py", "p2w_lib/app/qualitative.py", "p2w_lib/app/notebook_outputs.py",
    "p2w_lib/app/downloads.py", "p2w_lib/app/paper_data.py", "p2w_lib/tools/rehearsal.py", "p2w_lib/tools/bench.py", "p2w_lib/tools/smoke.py",
    "p2w_lib/demo/",
)


@pytest.mark.parametrize("module", LIBRARY)
def test_a_library_module_never_reaches_the_application(module):
    reached = closure(ROOT, {module})
    assert f"{module.replace('.', '/')}.py" in reached  # the module exists under that name
    leaks = sorted(f for f in reached if f.startswith(APPLICATION))
    assert not leaks, f"{module} imports application code (at any depth): {leaks}"


def test_the_check_sees_a_leak():
    assert "p2w_lib/demo/clip_pretrain.py" in closure(ROOT, {"p2w_lib.app.pipeline"})
