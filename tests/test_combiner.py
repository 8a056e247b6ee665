"""Combiner against references written from CLIP4Cir's definition (`src/combiner.py`,
`combiner_train.py`, `utils.generate_randomized_fiq_caption`, `validate.py`), its training's resume
and run identity, and loading ours or a release."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest
import torch

from p2w_lib.methods.combiner.config import CombinerConfig
from p2w_lib.methods.combiner.network import Combiner, CombinerShape, in_batch_loss
from p2w_lib.methods.combiner.train import (
    StaleCombinerCheckpoint,
    TripletFeatures,
    batch_loss,
    load_combiner,
    train_combiner,
)
from p2w_lib.methods.combiner.triplets import LabeledTriplets, query_caption, training_forms
from p2w_lib.training.checkpoint import CheckpointError
from tests.conftest import tiny_clip

SHAPE = CombinerShape(clip_dim=8, projection_dim=12, hidden_dim=16)


def reference_combine(sd: dict, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The original's combine_features in eval mode, one sample at a time with plain arithmetic."""
    out = []
    for v, t in zip(image, text):
        tp = torch.relu(sd["text_projection_layer.weight"] @ t + sd["text_projection_layer.bias"])
        vp = torch.relu(sd["image_projection_layer.weight"] @ v + sd["image_projection_layer.bias"])
        joint = torch.cat([tp, vp])  # text first
        h = torch.relu(sd["combiner_layer.weight"] @ joint + sd["combiner_layer.bias"])
        a = torch.relu(sd["dynamic_scalar.0.weight"] @ joint + sd["dynamic_scalar.0.bias"])
        lam = 1 / (1 + math.exp(-float(sd["dynamic_scalar.3.weight"] @ a + sd["dynamic_scalar.3.bias"])))
        o = sd["output_layer.weight"] @ h + sd["output_layer.bias"] + lam * t + (1 - lam) * v
        out.append(o / o.norm())
    return torch.stack(out)


def test_forward_equals_the_reference_definition():
    torch.manual_seed(0)
    net = Combiner(SHAPE).eval()
    image, text = torch.randn(5, 8) * 3, torch.randn(5, 8) * 3  # unnormalised, as CLIP's
    got = net(image, text)
    want = reference_combine(net.state_dict(), image, text)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(5))


def test_dropout_is_half_and_active_in_training():
    net = Combiner(SHAPE)
    rates = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.5] * 4
    x = torch.randn(4, 8)
    torch.manual_seed(1)
    a = net.train()(x, x)
    torch.manual_seed(2)
    assert not torch.allclose(a, net(x, x))


def test_loss_is_cross_entropy_over_in_batch_targets_at_scale_100():
    torch.manual_seed(0)
    pred = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    target = torch.randn(6, 8) * 2
    want = 0.0
    for i in range(6):
        logits = [100 * float(pred[i] @ (target[j] / target[j].norm())) for j in range(6)]
        m = max(logits)
        want += -(logits[i] - m - math.log(sum(math.exp(x - m) for x in logits)))
    assert in_batch_loss(pred, target).item() == pytest.approx(want / 6, rel=1e-5)


def test_fashion_iq_caption_forms_follow_clip4cir():
    caps = ("Is Red.", " has a white logo? ")
    assert training_forms(caps) == (
        "Is red and has a white logo",
        "Has a white logo and Is Red",
        "Is red",
        "Has a white logo",
    )
    assert query_caption(caps) == "Is red and has a white logo"  # validate.py's form
    assert training_forms(("the same but blue",)) == ("the same but blue",)  # CIRR: as it is
    with pytest.raises(ValueError, match="one caption"):
        training_forms(("a", "b", "c"))


def _features(n: int, forms: int) -> TripletFeatures:
    g = torch.Generator().manual_seed(0)
    return TripletFeatures(
        images=torch.randn(2 * n, 8, generator=g),
        texts=torch.randn(n * forms, 8, generator=g),
        reference=torch.arange(n),
        target=torch.arange(n, 2 * n),
        forms=torch.arange(n * forms).view(n, forms),
    )


def test_each_step_draws_each_caption_form_a_quarter_of_the_time(monkeypatch):
    feats, drawn = _features(64, 4), Counter()
    cfg = CombinerConfig(batch_size=64, epochs=1)

    class Spy(Combiner):
        def forward(self, image, text):
            for row in text:
                drawn[int((feats.texts == row).all(dim=1).nonzero()[0]) % 4] += 1
            return super().forward(image, text)

    net = Spy(SHAPE)
    for step in range(50):
        batch_loss(net, feats, step, cfg, torch.device("cpu"))
    assert sum(drawn.values()) == 3200
    assert all(abs(drawn[f] / 3200 - 0.25) < 0.03 for f in range(4)), drawn


@pytest.fixture
def triplets(image_paths):
    n = len(image_paths) // 2
    caps = tuple((f"is colour {i}", f"has shape {i % 3}") for i in range(n))
    return LabeledTriplets("fashion_iq", tuple(image_paths[:n]), tuple(image_paths[n:]), caps)


CFG = CombinerConfig(batch_size=4, epochs=3, checkpoint_every=2, projection_mult=1, hidden_mult=2, lr=1e-3)


def test_training_lowers_the_loss_and_resumes_to_the_same_weights(clip, triplets, tmp_path):
    whole = train_combiner(clip, triplets, CFG, tmp_path / "whole")
    assert whole.steps == 9  # 3 epochs of 12 // 4 batches
    part = train_combiner(clip, triplets, CFG, tmp_path / "part", until_step=4)
    assert part.steps == 4
    resumed = train_combiner(clip, triplets, CFG, tmp_path / "part")
    for k, v in whole.combiner.state_dict().items():
        torch.testing.assert_close(resumed.combiner.state_dict()[k], v, rtol=0, atol=0)
    assert (tmp_path / "part" / "train_log.csv").read_text() == (tmp_path / "whole" / "train_log.csv").read_text()
    more = train_combiner(clip, triplets, replace(CFG, epochs=40), tmp_path / "long")
    rows = (tmp_path / "long" / "train_log.csv").read_text().splitlines()[1:]
    first, last = (float(r.split(",")[2]) for r in (rows[0], rows[-1]))
    assert more.steps == 120 and last < first


def test_a_checkpoint_of_other_triplets_is_another_run(clip, triplets, tmp_path):
    train_combiner(clip, triplets, CFG, tmp_path, until_step=2)
    other = replace(triplets, captions=triplets.captions[::-1])
    with pytest.raises(StaleCombinerCheckpoint, match="training triplets"):
        train_combiner(clip, other, CFG, tmp_path)
    assert train_combiner(clip, other, CFG, tmp_path, restart_on_change=True).steps == 9
    ckpt = torch.load(tmp_path / "combiner.pt", weights_only=True)
    assert ckpt["data"] == other.identity and ckpt["source"] == "fashion_iq"


def test_too_few_triplets_for_a_batch_is_an_actionable_error(clip, triplets, tmp_path):
    with pytest.raises(ValueError, match="lower combiner.batch_size"):
        train_combiner(clip, triplets, replace(CFG, batch_size=64), tmp_path)


def test_loading_ours_and_a_release_and_refusing_another_clip(clip, triplets, tmp_path):
    run = train_combiner(clip, triplets, CFG, tmp_path / "ours")
    loaded = load_combiner(run.checkpoint, clip)
    x = torch.randn(3, clip.embed_dim)
    torch.testing.assert_close(loaded(x, x), run.combiner(x, x))
    with pytest.raises(CheckpointError, match="another CLIP"):
        load_combiner(run.checkpoint, tiny_clip(1))
    release = tmp_path / "fiq_comb_RN50x4_fullft.pt"  # CLIP4Cir's format: {"epoch", "Combiner": state_dict}
    torch.save({"epoch": 3, "Combiner": run.combiner.state_dict()}, release)
    torch.testing.assert_close(load_combiner(release, clip)(x, x), run.combiner(x, x))
    wide = Combiner(CombinerShape(640, 2560, 16))
    torch.save({"epoch": 3, "Combiner": wide.state_dict()}, release)
    with pytest.raises(CheckpointError, match="RN50x4"):
        load_combiner(release, clip)


def test_the_method_composes_the_caption_clip4cir_evaluates_with(clip, image_paths):
    from p2w_lib.methods.registry import compose_queries

    torch.manual_seed(0)
    net = Combiner(CombinerShape(clip.embed_dim, 16, 32)).eval()
    image = torch.randn(2, clip.embed_dim)
    caps = [("is red.", "has a logo"), ("is blue", "is long")]
    got = compose_queries(
        clip,
        {"combiner_fashion_iq": net},
        image,
        ["a photo of * , x"] * 2,
        methods=["combiner_fashion_iq"],
        captions=caps,
    )["combiner_fashion_iq"]
    text = clip.encode_text(["Is red and has a logo", "Is blue and is long"]).float()  # unnormalised
    torch.testing.assert_close(got, net(image, text), rtol=1e-5, atol=1e-6)
    # a benchmark without relative captions (domain conversion): its text-only string
    plain = compose_queries(
        clip, {"combiner_fashion_iq": net}, image, ["a origami of *"] * 2, methods=["combiner_fashion_iq"]
    )
    torch.testing.assert_close(plain["combiner_fashion_iq"], net(image, clip.encode_text(["a origami of"] * 2).float()))
