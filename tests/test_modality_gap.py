"""The demo CLIP's starting temperature (clip_pretrain.init_logit_scale) and the modality-gap diagnostic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from p2w_lib.clip.backbone import read_model_config
from p2w_lib.clip.features import embed_images
from p2w_lib.core.config import ConfigError, validate
from p2w_lib.demo.clip_pretrain import build_model
from p2w_lib.demo.config import DemoClipConfig
from p2w_lib.methods.base import encode_unique_texts
from p2w_lib.tools.ablations.modality_gap import modality_gap
from tests.conftest import tiny_world, write_images


def test_the_model_starts_at_the_configured_temperature_and_the_default_is_clips():
    model_cfg = read_model_config("p2w-tiny")["model_cfg"]
    assert build_model(model_cfg, 0, 70.0).logit_scale.exp().item() == pytest.approx(70.0, rel=1e-6)
    default = build_model(model_cfg, 0).logit_scale.item()
    assert default == pytest.approx(math.log(1 / 0.07), rel=1e-7)  # open_clip's CLIP initialisation
    assert DemoClipConfig().init_logit_scale == pytest.approx(1 / 0.07)


@pytest.mark.parametrize("bad", [0.0, -1.0, 150.0])
def test_a_temperature_outside_clips_range_is_refused_naming_the_key(bad):
    with pytest.raises(ConfigError, match=r"clip_pretrain\.init_logit_scale: must be in \(0, 100\]"):
        validate(DemoClipConfig(init_logit_scale=bad), "clip_pretrain")


def test_modality_gap_matches_a_pairwise_loop(clip, tmp_path):
    paths = write_images(tmp_path / "g", 6)
    texts = ["a sketch of", "a neon of"]
    gap = modality_gap(clip, paths, texts, cache_dir=None)
    images = []
    for path in paths:  # one image at a time, normalised by hand
        f = embed_images(clip, [path], cache_dir=None, desc="one").tensor(normalize=False)[0].double()
        images.append(f / f.norm())
    text = [t.double() / t.double().norm() for t in encode_unique_texts(clip, texts)]
    ii = [float(a @ b) for a in images for b in images]
    ti = [float(t @ a) for t in text for a in images]
    assert gap["image_image_cos"] == pytest.approx(sum(ii) / len(ii), abs=1e-5)
    assert gap["text_image_cos"] == pytest.approx(sum(ti) / len(ti), abs=1e-5)
    assert gap["image_image_std"] == pytest.approx(torch.tensor(ii).std().item(), abs=1e-5)
    centroid = sum(images) / len(images) - sum(text) / len(text)
    assert gap["centroid_distance"] == pytest.approx(centroid.norm().item(), abs=1e-5)


@pytest.mark.slow
def test_the_ablation_runs_end_to_end_on_the_tiny_world(tmp_path, monkeypatch):
    """`python -m p2w_lib.tools.ablations.modality_gap` on the tiny profile: the row has every measure, the CLIP
    started where asked, and its domain-conversion scores are the protocol's on the same models."""
    from p2w_lib.tools.ablations import modality_gap as gap_ablation

    tiny_world(tmp_path, monkeypatch)
    row = gap_ablation.run(Path("params.yaml"), 40.0, 0, tmp_path / "work", profile="tiny", clip_overrides={"steps": 4})
    assert row["init_logit_scale"] == 40.0 and row["steps"] == 4
    assert {"R@10 image_text", "R@10 pic2word", "R@10 oracle_text", "centroid_distance", "class (photo)"} <= set(row)
    low, mean, high = (row["Fashion-IQ margin R@10 [95% CI]"][i] for i in (1, 0, 2))
    assert low <= mean <= high
    trained = json.loads((tmp_path / "work" / "clip" / "trained.json").read_text())
    assert trained["config"]["init_logit_scale"] == 40.0 and trained["config"]["steps"] == 4


@pytest.mark.parametrize("setting", ["nonsense=1", "steps", "seed=3", "init_logit_scale=20"])
def test_gap_ablation_refuses_a_setting_it_cannot_apply(setting, capsys):
    from p2w_lib.tools.ablations import modality_gap as gap_ablation

    with pytest.raises(SystemExit) as stop:
        gap_ablation.main(["--clip", setting])
    assert stop.value.code == 2
    assert f"--clip {setting}: expected KEY=VALUE" in capsys.readouterr().err


def test_gap_ablation_setting_is_validated(tmp_path):
    from p2w_lib.tools.ablations import modality_gap as gap_ablation

    root = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError, match=r"clip_pretrain\.steps: must be at least 1"):
        gap_ablation.run(root / "params.yaml", None, 0, tmp_path, profile="tiny", clip_overrides={"steps": 0})
