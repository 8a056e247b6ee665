"""The mapper keeps the official IM2TEXT layout; checkpoints carry config + CLIP identity."""

from __future__ import annotations

import pytest
import torch

from p2w_lib import Mapper, MapperConfig, load_mapper, save_mapper_checkpoint
from p2w_lib.training.checkpoint import CheckpointError

# The official IM2TEXT's parameter names: layers = Sequential of (Linear, Dropout, ReLU) blocks, then fc_out.
OFFICIAL_KEYS = [
    "fc_out.bias",
    "fc_out.weight",
    "layers.0.0.bias",
    "layers.0.0.weight",
    "layers.1.0.bias",
    "layers.1.0.weight",
]


def test_state_dict_keys_match_official_im2text():
    mapper = Mapper(768, 768)
    assert sorted(mapper.state_dict()) == OFFICIAL_KEYS
    # ViT-L/14: 768 -> 512 -> 512 -> 768, about 1.05M parameters
    assert sum(p.numel() for p in mapper.parameters()) == 768 * 512 + 512 + 512 * 512 + 512 + 512 * 768 + 768


def test_layer_order_is_linear_dropout_relu():
    block = Mapper(8, 4, hidden_dim=6, n_layers=1, dropout=0.5).layers[0]
    assert [type(m).__name__ for m in block] == ["Linear", "Dropout", "ReLU"]
    assert block[1].p == 0.5


def official_checkpoint(path, embed_dim, token_dim, prefix="module.", hidden=512):
    """A file laid out like an official Pic2Word checkpoint, written key by key from random tensors;
    returns a Mapper holding the same weights, for comparison."""
    shapes = {"layers.0.0": (hidden, embed_dim), "layers.1.0": (hidden, hidden), "fc_out": (token_dim, hidden)}
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key in OFFICIAL_KEYS:
        layer, kind = key.rsplit(".", 1)
        shape = shapes[layer] if kind == "weight" else shapes[layer][:1]
        state[key] = torch.randn(*shape, generator=gen) * 0.05
    torch.save({"epoch": 30, "state_dict": {}, "state_dict_img2text": {prefix + k: v for k, v in state.items()}}, path)
    ref = Mapper(embed_dim, token_dim, hidden_dim=hidden)
    ref.load_state_dict(state)
    return ref


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_loads_official_checkpoint(clip, tmp_path, prefix):
    path = tmp_path / "epoch_30.pt"
    ref = official_checkpoint(path, clip.embed_dim, clip.token_dim, prefix)
    mapper = load_mapper(path, clip)
    x = torch.randn(5, clip.embed_dim)
    assert torch.equal(mapper(x), ref.eval()(x))
    assert not mapper.training


def test_official_checkpoint_for_another_clip_is_a_clear_error(clip, tmp_path):
    path = tmp_path / "vitl.pt"
    official_checkpoint(path, 768, 768)
    with pytest.raises(CheckpointError, match="embed_dim=32"):
        load_mapper(path, clip)


def test_round_trip_carries_config_and_clip_identity(clip, tmp_path):
    cfg = MapperConfig(hidden_dim=24, n_layers=3, dropout=0.2)
    mapper = Mapper.from_config(cfg, clip.embed_dim, clip.token_dim)
    save_mapper_checkpoint(tmp_path / "m.pt", mapper, cfg, clip.identity, step=7)
    loaded = load_mapper(tmp_path / "m.pt", clip)
    assert len(loaded.layers) == 3 and loaded.layers[0][0].out_features == 24 and loaded.layers[0][1].p == 0.2
    x = torch.randn(3, clip.embed_dim)
    assert torch.equal(loaded(x), mapper.eval()(x))


def test_mapper_trained_on_other_clip_weights_is_refused(clip, clip_seed1, tmp_path):
    mapper = Mapper(clip.embed_dim, clip.token_dim)
    save_mapper_checkpoint(tmp_path / "m.pt", mapper, MapperConfig(), clip.identity)
    with pytest.raises(CheckpointError, match="trained on CLIP"):
        load_mapper(tmp_path / "m.pt", clip_seed1)
    assert load_mapper(tmp_path / "m.pt", clip_seed1, strict_clip=False) is not None


def test_missing_and_garbage_checkpoints(clip, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_mapper(tmp_path / "nope.pt", clip)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_mapper(tmp_path / "bad.pt", clip)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_mapper(tmp_path / "other.pt", clip)


def test_wrong_input_width_is_a_clear_error():
    with pytest.raises(ValueError, match="width 16"):
        Mapper(16, 8)(torch.zeros(2, 10))


class _Payload:
    """What a crafted checkpoint pickles: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["top", "inside_state"])
def test_crafted_checkpoint_is_refused_before_it_runs(clip, tmp_path, where):
    marker = tmp_path / "pwned"
    payload = _Payload(marker)
    obj = payload if where == "top" else {"format": "p2w_lib.mapper/1", "mapper": {"x": payload}}
    torch.save(obj, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_mapper(tmp_path / "evil.pt", clip)
    assert not marker.exists()


def test_resume_checkpoint_round_trips_under_safe_loading(clip, tmp_path):
    """A real training checkpoint (optimizer and RNG state included) loads with weights_only."""
    from p2w_lib import TrainConfig, train_mapper
    from p2w_lib.training.checkpoint import read_checkpoint
    from tests.conftest import write_images

    paths = write_images(tmp_path / "images", 16)
    run = train_mapper(
        clip,
        paths,
        TrainConfig(batch_size=8, epochs=1, warmup_steps=1),
        MapperConfig(hidden_dim=16),
        tmp_path / "run",
        cache_dir=tmp_path / "cache",
    )
    ckpt = read_checkpoint(run.checkpoint)
    assert {"mapper", "optimizer", "rng", "train", "step"} <= set(ckpt)
