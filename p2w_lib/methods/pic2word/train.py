"""Training the mapper on unlabeled images; CLIP stays frozen.

Each step: image embeddings [B, D] -> mapper -> pseudo tokens [B, W] -> `a photo of *` composed
-> contrastive loss against the (normalised) image embeddings, scaled by CLIP's logit_scale.

Because CLIP is frozen and (by default) images are not augmented, image embeddings are read
from the embedding cache instead of re-running the image encoder every step. The data order
is a pure function of (seed, epoch), the learning rate a pure function of the step, and the
checkpoint carries the RNG state, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import (
    ComposedTokens,
    encode_composed_tokens,
    tokenize_prompts,
)
from p2w_lib.clip.features import (
    AugmentedView,
    augment_transform,
    embed_images,
    embed_images_sharded,
)
from p2w_lib.clip.prefix_cache import PrefixCachedText, supports_prefix_cache
from p2w_lib.core.config import to_dict, validate
from p2w_lib.data.images import BadImageReport, BadImagesError, ImageListDataset
from p2w_lib.methods.pic2word.checkpoint import FORMAT, save_mapper_checkpoint
from p2w_lib.methods.pic2word.config import MapperConfig, TrainConfig
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.training.checkpoint import CheckpointError, read_checkpoint
from p2w_lib.training.distributed import dist_info, gather_batch
from p2w_lib.training.loop import Loop, StepLog
from p2w_lib.training.loss import contrastive_loss
from p2w_lib.training.provenance import code_fingerprint
from p2w_lib.training.schedule import batch_indices, lr_at
from p2w_lib.training.state import list_id, rng_state, set_rng_state

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "mapper.pt"
LOG_NAME = "train_log.csv"
# Settings that do not change the trained weights; a resumed run may change them.
_RESUME_FREE = {"checkpoint_every", "log_every", "num_workers", "embed_batch_size", "max_bad_fraction"}


@dataclass
class TrainResult:
    mapper: Mapper
    steps: int
    last_loss: float
    checkpoint: Path
    log_csv: Path


def make_optimizer(mapper: Mapper, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (biases are not decayed)."""
    decay = [p for p in mapper.parameters() if p.ndim >= 2]
    no_decay = [p for p in mapper.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


# A feature stream yields the image features [B, D] of steps start..stop-1, given plan(step) -> indices.
FeatureStream = Callable[[int, int, Callable[[int], torch.Tensor]], Iterator[torch.Tensor]]


def cached_feature_source(
    clip: FrozenClip, paths: Sequence[str], cfg: TrainConfig, cache_dir
) -> tuple[FeatureStream, int]:
    """Read embeddings from the cache; returns (feature stream, number of usable images).

    With cfg.augment_views = K > 1, K augmented views of every image are embedded once and each
    step takes one view per image, drawn from (seed, step) so a resumed run draws the same."""
    kwargs = dict(
        batch_size=cfg.embed_batch_size,
        num_workers=cfg.num_workers,
        max_bad_fraction=cfg.max_bad_fraction,
        dtype=cfg.cache_dtype,
    )
    rank, world = dist_info()
    views = (
        [None]
        if cfg.augment_views == 1
        else [AugmentedView(i, cfg.crop_scale, cfg.seed) for i in range(cfg.augment_views)]
    )
    embs = []
    for view in views:
        desc = "embedding training images" + (f" (view {view.index + 1}/{len(views)})" if view else "")
        if world > 1 and cache_dir is not None:  # every rank embeds its share of the images
            embs.append(embed_images_sharded(clip, paths, cache_dir, rank, world, desc=desc, view=view, **kwargs))
        else:
            embs.append(embed_images(clip, paths, cache_dir=cache_dir, desc=desc, view=view, **kwargs))
    rows = np.flatnonzero(np.logical_and.reduce([e.valid for e in embs]))  # training index -> cache row, bad images out

    def stream(start: int, stop: int, plan: Callable[[int], torch.Tensor]) -> Iterator[torch.Tensor]:
        for step in range(start, stop):
            # Fancy-indexing the memmap reads only the batch's rows: the cache never has to fit in RAM.
            batch = rows[plan(step).numpy()]
            if len(embs) == 1:
                feats = np.asarray(embs[0].features[batch], dtype=np.float32)  # [B, D]
            else:
                pick = view_choice(step, len(batch), len(embs), cfg.seed)  # [B] view of each sample
                feats = np.empty((len(batch), clip.embed_dim), dtype=np.float32)
                for v in np.unique(pick):
                    feats[pick == v] = embs[v].features[batch[pick == v]]
            yield torch.from_numpy(feats).to(clip.device)

    return stream, len(rows)


def view_choice(step: int, batch: int, n_views: int, seed: int) -> np.ndarray:
    """Which cached view each sample of `step` uses: a pure function of (seed, step)."""
    return np.random.default_rng([seed, step, 7_919]).integers(0, n_views, batch)


class _PlannedBatches(torch.utils.data.Sampler):
    """The index batches the training loop will consume, so DataLoader workers can decode ahead."""

    def __init__(self, start: int, stop: int, plan: Callable[[int], torch.Tensor]):
        self.start, self.stop, self.plan = start, stop, plan

    def __iter__(self):
        return (self.plan(step).tolist() for step in range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def recomputed_feature_source(clip: FrozenClip, paths: Sequence[str], cfg: TrainConfig) -> tuple[FeatureStream, int]:
    """Re-encode images every step with RandomResizedCrop, as the original recipe does; `num_workers`
    DataLoader processes decode and augment the planned batches ahead of the GPU."""
    augment = augment_transform(clip, cfg.crop_scale)
    dataset = ImageListDataset(paths, augment, clip.image_size)
    report = BadImageReport(total=len(dataset))

    def readable(images: torch.Tensor, idx: torch.Tensor, errors: list[str]) -> torch.Tensor:
        for i, err in zip(idx.tolist(), errors):
            if err and dataset.paths[i] not in report.bad:  # a corrupt CC3M download: skip it, say so once
                report.add(dataset.paths[i], err)
                log.warning(
                    "skipping unreadable training image %s (%s); %d so far", dataset.paths[i], err, report.n_bad
                )
        report.check(cfg.max_bad_fraction, "training images")
        keep = torch.tensor([not e for e in errors])
        if not keep.any():
            raise BadImagesError(f"every image of a training batch is unreadable: {report.summary('training images')}")
        if not keep.all() and dist_info()[1] > 1:  # ranks must all-gather equal shapes: repeat readable ones
            good = torch.nonzero(keep).squeeze(1)
            return images[good[torch.arange(len(errors)) % len(good)]]
        return images[keep]  # [B', C, H, W]; B' < B only when an image was skipped

    def stream(start: int, stop: int, plan: Callable[[int], torch.Tensor]) -> Iterator[torch.Tensor]:
        loader = DataLoader(
            dataset,
            batch_sampler=_PlannedBatches(start, stop, plan),
            num_workers=cfg.num_workers,
            pin_memory=clip.device.type == "cuda",
            persistent_workers=False,
        )
        for images, idx, errors in loader:
            yield clip.encode_image(readable(images, idx, list(errors)))  # [B', D]

    return stream, len(dataset)


def _prompt_tokens(clip: FrozenClip, prompt: str, batch: int) -> ComposedTokens:
    one = tokenize_prompts(clip.model, clip.tokenizer, [prompt])
    return ComposedTokens(one.ids.expand(batch, -1), one.star_pos.expand(batch), one.pool_pos.expand(batch))


def train_step(
    clip: FrozenClip,
    mapper: Mapper,
    tokens: ComposedTokens,
    feats: torch.Tensor,
    opt,
    cfg: TrainConfig,
    text: PrefixCachedText | None = None,
) -> float:
    """One optimisation step on unnormalised image embeddings [B, D]; returns the loss.

    text: the prompt prefix's keys/values computed once (exact, 3x less text work for `a photo of *`);
    None runs the (truncated) full prompt every step."""
    amp = cfg.amp and clip.device.type == "cuda"
    if feats.shape[0] < tokens.ids.shape[0]:  # unreadable images were skipped from this batch
        n = feats.shape[0]
        tokens = ComposedTokens(tokens.ids[:n], tokens.star_pos[:n], tokens.pool_pos[:n])
    with torch.autocast(device_type=clip.device.type, dtype=torch.bfloat16, enabled=amp):
        pseudo = mapper(feats)  # [B, W]
        if text is not None:
            composed = text.encode(tokens, pseudo, normalize=True)  # [B, D]
        else:
            composed = encode_composed_tokens(clip.model, tokens, pseudo, normalize=True)  # [B, D]
        image = gather_batch(F.normalize(feats.float(), dim=-1))  # [W*B, D] over all ranks
        loss = contrastive_loss(image, gather_batch(composed.float()), clip.logit_scale)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


class StaleCheckpointError(CheckpointError):
    """A resumable checkpoint of another run: other settings, CLIP or training images."""


def _resume(
    ckpt_path: Path,
    clip: FrozenClip,
    mapper: Mapper,
    opt,
    cfg: TrainConfig,
    mapper_cfg: MapperConfig,
    n_images: int,
    data_id: str,
    code_id: str | None = None,
) -> tuple[int, list[int]]:
    """Load training state from `ckpt_path`; returns the steps already done and where it was resumed before.

    code_id: when given, a checkpoint written by other training code is stale too (the pipeline:
    DVC re-runs the stage on a code change, and a finished checkpoint must not stand in for it)."""
    ckpt = read_checkpoint(ckpt_path)
    if ckpt.get("format") != FORMAT or "optimizer" not in ckpt:
        raise CheckpointError(
            f"{ckpt_path}: not a resumable p2w_lib training checkpoint; delete it or use another out_dir"
        )
    saved = {k: v for k, v in ckpt["train"].items() if k not in _RESUME_FREE}
    now = {k: v for k, v in to_dict(cfg).items() if k not in _RESUME_FREE}
    changed = {k for k in now if saved.get(k) != now[k]}
    if ckpt["mapper_config"] != to_dict(mapper_cfg):
        changed.add("mapper")
    if ckpt["clip"]["fingerprint"] != clip.identity.fingerprint:
        changed.add("clip")
    if ckpt.get("n_images") != n_images or ckpt.get("data", data_id) != data_id:
        changed.add("images")
    if code_id is not None and ckpt.get("code") != code_id:
        changed.add("training code")
    if changed:
        raise StaleCheckpointError(
            f"{ckpt_path}: cannot resume, these settings differ from the checkpoint's: {sorted(changed)}. "
            "Delete the checkpoint to start over, or train into another out_dir."
        )
    mapper.load_state_dict(ckpt["mapper"])
    opt.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"])
    return int(ckpt["step"]), list(ckpt.get("resumed_at", []))


def train_mapper(
    clip: FrozenClip,
    image_paths: Sequence[str],
    cfg: TrainConfig,
    mapper_cfg: MapperConfig,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    until_step: int | None = None,
    restart_on_change: bool = False,
) -> TrainResult:
    """Train (or resume training) a mapper; checkpoints and the loss log go to `out_dir`.

    until_step: stop after this global step (checkpointed), e.g. for time-boxed jobs; calling
    again resumes where it stopped.
    restart_on_change: a checkpoint saved with other settings, CLIP, training list or training
        code is deleted and training starts over (the pipeline: its DVC stage re-runs on exactly
        such changes); by default it is an error (code changes aside, which a direct call may
        make between a kill and a resume), so a call never silently discards someone's run.
    """
    validate(cfg)
    validate(mapper_cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rank, world = dist_info()
    if cfg.recompute_image_features and cfg.augment_views > 1:
        raise ValueError(
            f"train.recompute_image_features and train.augment_views={cfg.augment_views} both augment: "
            "re-encode every step (recompute) or embed K views once (augment_views), not both"
        )
    if cfg.recompute_image_features:
        source, n = recomputed_feature_source(clip, image_paths, cfg)
    else:
        source, n = cached_feature_source(clip, image_paths, cfg, cache_dir)
    # cfg.batch_size is the global contrastive batch: every process embeds its share and the loss
    # runs over the all-gathered features, so the negatives per step do not depend on the GPU count.
    global_batch, local_batch = cfg.batch_size, cfg.batch_size // world
    if global_batch % world:
        raise ValueError(
            f"train.batch_size {global_batch} is the global batch and must split evenly over {world} "
            f"processes; choose a multiple of {world}"
        )
    if n < global_batch:
        raise ValueError(
            f"{n} usable training images but a global batch of {global_batch}; lower the batch size or add images"
        )
    steps_per_epoch = n // global_batch
    total = cfg.epochs * steps_per_epoch
    total = min(total, cfg.max_steps) if cfg.max_steps is not None else total

    torch.manual_seed(cfg.seed)  # mapper init (identical on every rank) and dropout
    mapper = Mapper.from_config(mapper_cfg, clip.embed_dim, clip.token_dim).to(clip.device)
    opt = make_optimizer(mapper, cfg)
    ckpt_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    data_id, code_id = list_id(image_paths), code_fingerprint(__name__)
    start, resumed_at = 0, []
    if ckpt_path.exists():
        try:
            start, resumed_at = _resume(
                ckpt_path, clip, mapper, opt, cfg, mapper_cfg, n, data_id, code_id if restart_on_change else None
            )
        except StaleCheckpointError as err:
            if not restart_on_change:
                raise
            log.warning("%s; starting over", err)
            if rank == 0:  # every rank sees the stale checkpoint; one deletes it
                ckpt_path.unlink(missing_ok=True)
                log_path.unlink(missing_ok=True)
    stop = total if until_step is None else min(total, until_step)
    if 0 < start < stop:
        resumed_at = [*resumed_at, start]  # provenance: the checkpoint says where a run was picked up
        log.info("resuming mapper training at step %d of %d (%s)", start, total, ckpt_path)
    model = mapper
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(mapper, device_ids=[clip.device.index] if clip.device.type == "cuda" else None)

    def checkpoint(step: int) -> None:
        if rank != 0:  # one writer; every rank holds the same weights
            return
        save_mapper_checkpoint(
            ckpt_path,
            mapper,
            mapper_cfg,
            clip.identity,
            train=to_dict(cfg),
            step=step,
            total_steps=total,
            n_images=n,
            data=data_id,
            code=code_id,
            resumed_at=resumed_at,
            optimizer=opt.state_dict(),
            rng=rng_state(),
        )

    def plan(step: int) -> torch.Tensor:  # this rank's share of the global batch of `step`
        return batch_indices(step, n, global_batch, cfg.seed)[rank * local_batch : (rank + 1) * local_batch]

    tokens = _prompt_tokens(clip, cfg.prompt, local_batch)
    text = PrefixCachedText(clip.model) if supports_prefix_cache(clip.model) else None
    mapper.train()
    features = source(start, stop, plan)

    def step(i: int) -> StepLog:
        loss = train_step(clip, model, tokens, next(features), opt, cfg, text)  # features of plan(i): [B, D]
        return StepLog((i // steps_per_epoch, f"{loss:.6f}"), loss)

    loop = Loop(
        log_path, ("epoch", "loss"), total, "training mapper", cfg.checkpoint_every, cfg.log_every, write=rank == 0
    )
    loss = loop.run(start, stop, opt, lambda i: lr_at(i, cfg.lr, cfg.warmup_steps, total), step, checkpoint)
    if stop > start or not ckpt_path.exists():
        checkpoint(stop)
    mapper.eval()
    return TrainResult(mapper=mapper, steps=stop, last_loss=loss, checkpoint=ckpt_path, log_csv=log_path)
