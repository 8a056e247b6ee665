"""What every query method is made of: its inputs, its declaration, and the shared composition.

A query method turns (reference image, text) into one query embedding. Everything the rest of the
code needs to know about a method is declared in one `QueryMethod` in the method's own module:
its names and colour, how it composes, and, for a trained method, a `Training` that says what it
learns from, which params.yaml sections it owns (typed configs with their ranges), its model folder
and stage, its training entry and how its network (trained here or released) loads. The pipeline,
the CLI, the provenance and the rehearsal read these declarations from the registry (registry.py);
none of them names a method.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import PLACEHOLDER, encode_composed_tokens, tokenize_prompts
from p2w_lib.clip.prefix_cache import PrefixCachedText, supports_prefix_cache


def text_only_prompt(prompt: str) -> str:
    """The prompt without its placeholder, whitespace collapsed ('a photo of * , is red' -> 'a photo of , is red')."""
    return re.sub(r"\s+", " ", prompt.replace(PLACEHOLDER, "")).strip()


@torch.no_grad()
def encode_unique_texts(clip: FrozenClip, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised text embeddings [Q, D], encoding each distinct string once."""
    unique = sorted(set(texts))
    row = {t: i for i, t in enumerate(unique)}
    feats = torch.cat(
        [clip.encode_text(unique[i : i + batch_size], normalize=True) for i in range(0, len(unique), batch_size)]
    )
    return feats[torch.tensor([row[t] for t in texts])].cpu()  # [Q, D]


@torch.no_grad()
def pseudo_token_queries(
    clip: FrozenClip, mapper: nn.Module, image_feats: torch.Tensor, prompts: Sequence[str], batch_size: int = 256
) -> torch.Tensor:
    """Composed query embeddings [Q, D] from unnormalised image embeddings [Q, D]; `mapper` is any
    network from image embedding to pseudo token (Pic2Word's mapper, a phi, SEARLE-OTI's inversion)."""
    was_training = mapper.training
    mapper.eval()
    # `a {domain} of *`: each domain's prefix runs once, then 2 positions per query (prefix_cache.py).
    cached = PrefixCachedText(clip.model) if supports_prefix_cache(clip.model) else None
    try:
        out = []
        for i in range(0, len(prompts), batch_size):
            feats = image_feats[i : i + batch_size].to(clip.device)  # [B, D]
            pseudo = mapper(feats)  # [B, W]
            tokens = tokenize_prompts(clip.model, clip.tokenizer, list(prompts[i : i + batch_size]))
            text = (
                cached.encode(tokens, pseudo) if cached else encode_composed_tokens(clip.model, tokens, pseudo)
            )  # [B, D]
            out.append(text.float().cpu())
        return torch.cat(out)
    finally:
        mapper.train(was_training)


@dataclass
class QueryInputs:
    """What a method composes from: Q reference images and their texts, and the trained networks
    (method name -> network). The encodings that several methods share (the normalised image, the
    text-only text) are computed once, when first asked."""

    clip: FrozenClip
    mappers: Mapping[str, nn.Module]
    image_feats: torch.Tensor  # [Q, D] unnormalised CLIP image embeddings
    prompts: Sequence[str]  # Q prompts with `*`
    texts: Sequence[str]  # Q text-only strings
    batch_size: int = 256
    benchmark: str | None = (
        None  # the registry name of the benchmark asking: methods with per-benchmark settings read it
    )
    # per-method settings for this call, {method: {name: value}} (e.g. {"slerp": {"alpha": 0.7}} for a
    # search); a method reads its own with `option` and falls back on its default.
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # the benchmark's relative caption(s) per query, for a method that reads the modification text
    # itself rather than a prompt (Combiner): Fashion-IQ's two, CIRR's one; None: the benchmark has none
    captions: Sequence[tuple[str, ...]] | None = None

    @cached_property
    def image(self) -> torch.Tensor:
        return F.normalize(self.image_feats.float(), dim=-1)  # [Q, D]

    @cached_property
    def text(self) -> torch.Tensor:
        return encode_unique_texts(self.clip, self.texts, self.batch_size)  # [Q, D], normalised

    def option(self, method: str, name: str, default: Any = None) -> Any:
        return self.options.get(method, {}).get(name, default)

    def require_mapper(self, method: str) -> nn.Module:
        if method not in self.mappers:
            raise ValueError(f"the {method} method needs its trained network; got networks for {sorted(self.mappers)}")
        return self.mappers[method]


@dataclass(frozen=True)
class QueryMethod:
    name: str
    label: str  # how tables and figures name it
    short: str  # its key in the small summary files `dvc metrics show` prints
    compose: Callable[[QueryInputs], torch.Tensor]  # [Q, D], L2-normalised
    colour: str  # its bars and lines in every figure
    training: Training | None = None  # set: a trained method, whose network QueryInputs.mappers holds under its name
    # the paper whose evaluation prompts score it by default: "pic2word" (Pic2Word's), or "searle"
    # (`a photo of * that {caption}`, which SEARLE and LinCIR publish their numbers under)
    protocol: str = "pic2word"
    supervised: bool = False  # trained on labeled triplets (Combiner): the paper's comparison, not zero-shot

    @property
    def trained(self) -> bool:
        return self.training is not None


def pseudo_token(method: str) -> Callable[[QueryInputs], torch.Tensor]:
    """Compose the prompt with the token of `method`'s network (every trained method: same prompt, other token)."""
    return lambda q: pseudo_token_queries(q.clip, q.require_mapper(method), q.image_feats, q.prompts, q.batch_size)


@dataclass(frozen=True)
class TrainInputs:
    """What a method's training entry gets for one seed: the frozen CLIP, the method's own settings
    (section -> typed config, seed not yet applied), its output folder, the embedding cache, and
    the profile's training list (read when asked: a caption-only method never reads the images)."""

    clip: FrozenClip
    seed: int
    settings: Mapping[str, Any]
    out_dir: Path
    cache_dir: Path | None
    images: Callable[[], list[str]]
    captions: Callable[[], list[str]]
    # the profile's labeled training triplets of a source ("fashion_iq", "cirr"), read when asked:
    # only a supervised method (Combiner) reads them, never an evaluation split
    triplets: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class NetworkInputs:
    """What a method's `network` loader gets: the CLIP, seed and settings, the seed's model folder,
    a released checkpoint to load instead (or None), and the training captions (read when asked)."""

    clip: FrozenClip
    seed: int
    settings: Mapping[str, Any]
    model_dir: Path
    released: str | None
    captions: Callable[[], list[str]]


@dataclass(frozen=True)
class Training:
    """How a trained method gets its network.

    sections: the params.yaml sections it owns -> their typed config classes (RANGES beside each).
    folder: its model folder, models/<profile>/<folder>/seed<N>/.
    network: loads the network for an evaluation (ours, or the released one when `released` is set).
    train: trains one seed into its folder and returns a run with `log_csv`; None: nothing is trained
        (the stage, if any, prepares something else, e.g. SEARLE-OTI's token store).
    checkpoint: the file `train` leaves in the seed's folder, which an evaluation needs.
    stage: its DVC stage, run by notebook `notebook` (dvc.yaml names both; a test holds them together).
    switch: a dotted setting that switches it on or off (`lincir.enabled`); None: always on.
    released: a dotted setting naming a released checkpoint to evaluate instead (`eval.lincir_checkpoint`).
    cli_option: the `search` option that loads a checkpoint of it (`--phi`), or None.
    distributed: its training can run under torchrun (launch.nproc_per_node).
    """

    sections: Mapping[str, type]
    folder: str
    network: Callable[[NetworkInputs], nn.Module]
    train: Callable[[TrainInputs], Any] | None = None
    checkpoint: str | None = None
    stage: str | None = None
    notebook: str | None = None
    switch: str | None = None
    released: str | None = None
    cli_option: str | None = None
    distributed: bool = False
    loss_plot: str | None = None  # results/plots/<loss_plot>/seed<N>.csv, for `dvc plots show`
