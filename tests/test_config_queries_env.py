"""Typed configs reject bad input; query methods follow the paper; the environment stays in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from p2w_lib import (
    ClipConfig,
    ConfigError,
    Mapper,
    MapperConfig,
    TrainConfig,
    compose_queries,
    load_clip,
)
from p2w_lib.core.config import from_dict, to_dict
from p2w_lib.methods.base import text_only_prompt

ROOT = Path(__file__).resolve().parents[1]


def test_from_dict_round_trip_and_type_coercion():
    cfg = from_dict(TrainConfig, {"lr": 1, "betas": [0.9, 0.99], "max_steps": None})
    assert cfg.lr == 1.0 and cfg.betas == (0.9, 0.99)
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, message",
    [
        ({"learning_rate": 1e-4}, r"params.yaml:train: unknown setting\(s\) \['learning_rate'\]"),
        ({"batch_size": "128"}, r"params.yaml:train.batch_size: expected an integer"),
        ({"betas": [0.9]}, r"params.yaml:train.betas: expected a list of 2 values"),
        ({"amp": "yes"}, r"params.yaml:train.amp: expected bool"),
        ([1, 2], r"expected a mapping"),
    ],
)
def test_malformed_config_is_a_clear_error(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, data, "params.yaml:train")


def test_unknown_model_and_tag_are_clear_errors():
    with pytest.raises(ConfigError, match="neither an open_clip model name"):
        load_clip(ClipConfig(model="ViT-Q-99", pretrained=None))
    with pytest.raises(ConfigError, match="known tag"):
        load_clip(ClipConfig(model="ViT-B-32", pretrained="no-such-tag"))
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        load_clip(ClipConfig(model="local-dir:/nonexistent/clip", pretrained=None))


def test_clip_is_frozen_and_in_eval_mode(clip):
    assert not clip.model.training
    assert not any(p.requires_grad for p in clip.model.parameters())


def test_query_methods(clip):
    feats = torch.randn(3, clip.embed_dim)
    prompts = ["a photo of * , is red", "a origami of *", "a origami of *"]
    mapper = Mapper.from_config(MapperConfig(hidden_dim=16), clip.embed_dim, clip.token_dim)
    q = compose_queries(clip, mapper, feats, prompts)
    text = clip.encode_text(["a photo of , is red", "a origami of", "a origami of"], normalize=True)
    assert torch.allclose(q["image_only"], F.normalize(feats, dim=-1))
    assert torch.allclose(q["text_only"], text, atol=1e-6)
    assert torch.allclose(q["image_text"], F.normalize(F.normalize(feats, dim=-1) + text, dim=-1), atol=1e-6)
    assert all(torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-5) for v in q.values())
    assert mapper.training  # restored after the no-grad eval pass
    assert set(q) == {"image_only", "text_only", "image_text", "slerp", "pic2word"}  # a bare mapper is Pic2Word's
    # Asked for no methods, a call scores those its networks allow; asked for one without its network, it refuses.
    assert list(compose_queries(clip, None, feats, prompts)) == ["image_only", "text_only", "image_text", "slerp"]
    with pytest.raises(ValueError, match=r"the pic2word method needs its trained network; got networks for \[\]"):
        compose_queries(clip, None, feats, prompts, methods=["pic2word"])
    with pytest.raises(ValueError, match=r"networks given for \['slerp'\], which are not trained query methods"):
        compose_queries(clip, {"slerp": mapper}, feats, prompts)
    with pytest.raises(ValueError, match="3 reference images"):
        compose_queries(clip, mapper, feats, prompts[:2])


def test_text_only_prompt_matches_official_removal():
    assert text_only_prompt("a cartoon of *") == "a cartoon of"
    assert text_only_prompt("a photo of * , is red and has a logo") == "a photo of , is red and has a logo"


def _pyproject_pins():
    text = (ROOT / "pyproject.toml").read_text()
    # the library's dependencies and every optional group (app, dev): environment.yml installs them all
    blocks = re.findall(r"^(?:dependencies|[a-z]+) = \[(.*?)\]", text, re.S | re.M)
    return sorted(pin for block in blocks for pin in re.findall(r'"([^"]+==[^"]+)"', block))


def test_environment_yml_matches_pyproject_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in env["dependencies"]
    assert sorted(pip_section) == _pyproject_pins()
    assert all("==" in pin for pin in _pyproject_pins())


def test_clip_from_local_weights_file_and_saved_folder(clip, tmp_path):
    """A weights file (pretrained=path) and a save_clip folder both load back the same weights."""
    from p2w_lib.clip.backbone import read_model_config, save_clip

    config = read_model_config("p2w-tiny")
    folder = save_clip(clip.model, config["model_cfg"], config["preprocess_cfg"], tmp_path / "saved")
    again = load_clip(ClipConfig(model=str(folder), pretrained=None, init_seed=99))
    assert again.identity.fingerprint == clip.identity.fingerprint
    tokens = clip.tokenizer(["a photo of a red star"])
    assert torch.allclose(again.model.encode_text(tokens), clip.model.encode_text(tokens))


def test_builtin_model_with_weights_file(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        random_rn = load_clip(ClipConfig(model="RN50", pretrained=None, init_seed=1))
        torch.save(random_rn.model.state_dict(), tmp_path / "rn50.pt")
        loaded = load_clip(ClipConfig(model="RN50", pretrained=str(tmp_path / "rn50.pt"), init_seed=2))
    assert loaded.identity.fingerprint == random_rn.identity.fingerprint
    assert loaded.identity.pretrained == str(tmp_path / "rn50.pt")
