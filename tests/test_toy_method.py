"""A trained method added from outside the package (tests/toy_method.py: its module, and one
`register` call standing for the registry line) runs through the profile, the training stage, the
loaders and a protocol with no edit anywhere else: the claim of docs/extending.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from p2w_lib.app import evaluation, models, prepare, profile, training
from p2w_lib.core.config import ConfigError
from p2w_lib.methods import registry
from p2w_lib.methods.base import pseudo_token_queries
from tests import toy_method
from tests.test_paper_pipeline import paper_repo  # noqa: F401  (the fixture: profile paper on a tiny random CLIP)

pytestmark = pytest.mark.slow


@pytest.fixture
def toy():
    registry.register(toy_method.METHOD)
    yield toy_method.METHOD
    registry.unregister("toy")


def _set_toy(settings: dict) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["profiles"]["paper"]["toy"] = settings
    params["profiles"]["paper"]["paper_data"]["benchmarks"] = ["fashion_iq"]
    params["profiles"]["paper"]["eval"]["ks"] = [1, 5]  # the fixture galleries hold 7 or 8 images
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_toy_method_declared_in_a_test_file_trains_loads_and_is_scored(paper_repo, toy):  # noqa: F811
    _set_toy({"steps": 4, "lr": 0.05})
    p = profile.load_profile()
    assert p.toy == toy_method.ToyConfig(steps=4, lr=0.05)  # its section, read through the registry
    assert "toy" in registry.trained() and registry.names()[-1] == "toy"
    prepare.prepare_data(p)
    with pytest.raises(FileNotFoundError, match=r"toy/seed0/toy\.pt"):
        models.require_trained(p, 0)  # the pipeline knows what the toy's evaluation needs

    runs = training.train_method(p, "toy")
    assert set(runs) == set(p.seeds)
    losses = runs[0].losses
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert (p.model_dir("toy", 0) / "toy.pt").is_file()
    assert Path("results/paper/plots/toy_loss/seed0.csv").read_text().startswith("step,loss")

    clip = models.clip_for(p, 0)
    net = models.network_for(p, "toy", 0, clip)
    result = evaluation.evaluate_benchmark(p, "fashion_iq", 0, clip, mapper={"toy": net})
    assert {"image_only", "text_only", "image_text", "slerp", "toy"} == set(result["methods"])
    toy_scores = result["methods"]["toy"]["per_category"]["dress"]
    assert set(toy_scores) == {"R@1", "R@5"} and all(0 <= v <= 100 for v in toy_scores.values())

    # its queries are the shared prompt path with its network, as a method's declaration says
    feats = torch.randn(3, clip.embed_dim)
    prompts = ["a photo of * , is red", "a origami of *", "a photo of *"]
    composed = registry.compose_queries(clip, {"toy": net}, feats, prompts, methods=["toy"])["toy"]
    assert torch.equal(composed, pseudo_token_queries(clip, net, feats, prompts))


def test_a_toy_setting_out_of_its_range_names_the_setting(paper_repo, toy):  # noqa: F811
    _set_toy({"steps": 0})
    with pytest.raises(ConfigError, match=r"toy\.steps.*at least 1"):
        profile.load_profile()


def test_unregistering_the_toy_forgets_its_section(paper_repo):  # noqa: F811
    assert "toy" not in registry.names()
    _set_toy({"steps": 2})
    with pytest.raises(ConfigError, match="toy"):
        profile.load_profile()  # an unknown section is an error, not silently ignored
