"""Loading a run's models: its frozen CLIP and the network of every trained method switched on.

What each method loads, and from where, is its own declaration (methods/base.py, Training.network);
this module only asks each one, in registry order.
"""

from __future__ import annotations

import logging

from torch import nn

from p2w_lib.app import training_data
from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.methods import registry
from p2w_lib.methods.base import NetworkInputs
from p2w_lib.methods.searle_oti import OTIQueryTokens, query_tokens

log = logging.getLogger(__name__)


def clip_for(p, seed: int) -> FrozenClip:
    """The frozen CLIP of a run: the demo CLIP pretrained with `seed`, or the paper's CLIP."""
    return p.source.clip(p, seed)


def network_for(p, method: str, seed: int, clip: FrozenClip) -> nn.Module:
    """`method`'s network for `seed` (its released checkpoint when params.yaml names one), checked against `clip`."""
    inputs = NetworkInputs(
        clip,
        seed,
        p.method_settings(method),
        p.model_dir(method, seed),
        p.released(method),
        lambda: training_data.training_captions(p),
    )
    return registry.QUERY_METHODS[method].training.network(inputs)


def mapper_for(p, seed: int, clip: FrozenClip) -> nn.Module:
    """The trained mapper of `seed` (or eval.mapper_checkpoint when set), checked against `clip`."""
    return network_for(p, "pic2word", seed, clip)


def token_mappers(p, seed: int, clip: FrozenClip) -> dict[str, nn.Module]:
    """{method: network} of every trained query method switched on, in registry order (the protocols
    then score each, beside the training-free methods). Pic2Word's mapper comes from mapper_for."""
    mappers = {}
    for method in registry.trained():
        if p.enabled(method):
            mappers[method] = mapper_for(p, seed, clip) if method == "pic2word" else network_for(p, method, seed, clip)
    return mappers


def oti_query_tokens(p, seed: int, clip: FrozenClip) -> OTIQueryTokens:
    """SEARLE-OTI's stand-in network with SEARLE's settings, holding no token yet."""
    return query_tokens(clip, training_data.training_captions(p), p.searle, seed)


def require_trained(p, seed: int) -> None:
    """FileNotFoundError saying how to get them when the run's CLIP or a method's network is not there yet."""
    needed = list(p.source.clip_files(p, seed))
    for method, m in registry.trained().items():
        if m.training.checkpoint and p.enabled(method) and not p.released(method):
            needed.append(p.model_dir(method, seed) / m.training.checkpoint)
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"no trained model for profile {p.name!r}, seed {seed}: {', '.join(missing)} missing. Run `make reproduce` "
            "to train it, or pass a mapper checkpoint (`--mapper`, or eval.mapper_checkpoint in params.yaml)"
        )


def clip_and_mapper(p, seed: int):
    clip = clip_for(p, seed)
    return clip, mapper_for(p, seed, clip)
