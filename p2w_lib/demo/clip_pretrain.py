"""Pretraining the demo's small CLIP from scratch with the standard CLIP contrastive loss.

No pretrained CLIP exists offline, so the demo trains one on its CC3M-like list. The result is
saved as a normal open_clip `local-dir` folder (config + weights) that `load_clip` reads like
any other CLIP. Images are decoded once into a uint8 tensor (the list is small), text runs with
the exact, length-bucketed context truncation of `composed`, and the ResNet tower runs
channels-last (about 2x faster on CPU).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from tqdm import tqdm

from p2w_lib.clip.backbone import read_model_config, save_clip
from p2w_lib.clip.composed import pool_positions, run_text_tower_bucketed, text_tower
from p2w_lib.core.config import to_dict, validate
from p2w_lib.core.files import atomic_torch_save, atomic_write_json
from p2w_lib.data.cc3m import read_image_caption_list
from p2w_lib.data.images import load_rgb
from p2w_lib.demo.batches import caption_groups, mixed_batch
from p2w_lib.demo.config import DemoClipConfig
from p2w_lib.demo.world import CLASSES, GARMENTS
from p2w_lib.training.checkpoint import read_checkpoint
from p2w_lib.training.loop import Loop, StepLog
from p2w_lib.training.loss import contrastive_loss
from p2w_lib.training.provenance import code_fingerprint
from p2w_lib.training.schedule import lr_at

OBJECT_WORDS = CLASSES + GARMENTS  # what a hard-negative group varies

log = logging.getLogger(__name__)

STATE_NAME = "pretrain_state.pt"
TRAINED_NAME = "trained.json"  # settings and data id of the finished model in clip/
LOG_NAME = "pretrain_log.csv"


def load_image_tensor(paths: list[str], size: int, threads: int = 4) -> torch.Tensor:
    """All images as uint8 [N, 3, size, size]; a missing or unreadable file is an error naming it."""

    def one(path: str) -> np.ndarray:
        try:
            img = load_rgb(path)
        except OSError as err:
            raise OSError(f"{path}: cannot read demo pretraining image ({err}); regenerate the demo world") from err
        if img.size != (size, size):
            img = img.resize((size, size))
        return np.asarray(img)

    with ThreadPoolExecutor(threads) as pool:
        arrays = list(tqdm(pool.map(one, paths, chunksize=256), total=len(paths), desc="loading images", unit="img"))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # [N, 3, S, S]


@functools.lru_cache(maxsize=1)
def _decoded(list_path: str, mtime_ns: int, size: int) -> torch.Tensor:
    """The list's images decoded once per process: the pipeline pretrains one CLIP per seed on them."""
    return load_image_tensor([p for p, _ in read_image_caption_list(list_path)], size)


def build_model(model_cfg: dict, seed: int, init_logit_scale: float = 1 / 0.07) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**model_cfg, init_logit_scale=math.log(init_logit_scale))
    return model.to(memory_format=torch.channels_last).train()


def make_optimizer(model: torch.nn.Module, cfg: DemoClipConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on gains, biases, embeddings of positions or the logit scale."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "positional" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "positional" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def pretrain_clip(
    list_path: str | Path, out_dir: str | Path, cfg: DemoClipConfig, restart_on_change: bool = False
) -> Path:
    """Train the demo CLIP on a `filepath<TAB>title` list; returns the saved open_clip folder.

    Resumable: state is checkpointed every `checkpoint_every` steps in `out_dir`, with the settings,
    the training list's hash and the training code's fingerprint. A state saved with other settings or data is an error, or, with
    `restart_on_change` (the pipeline, whose DVC stage re-runs on exactly such changes), deleted.
    """
    validate(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_id = hashlib.sha256(Path(list_path).read_bytes()).hexdigest() + code_fingerprint(__name__)
    if _already_trained(out_dir, cfg, data_id):
        log.info("%s: demo CLIP already trained with these settings, data and code; reusing it", out_dir / "clip")
        return out_dir / "clip"
    config = read_model_config(cfg.model)
    model_cfg, pre = config["model_cfg"], config["preprocess_cfg"]
    pairs = read_image_caption_list(list_path)
    size = model_cfg["vision_cfg"]["image_size"]
    images = _decoded(str(list_path), Path(list_path).stat().st_mtime_ns, size)  # [N, 3, S, S] uint8
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=model_cfg["text_cfg"]["context_length"])
    ids = tokenizer([c for _, c in pairs])  # [N, L]
    model = build_model(model_cfg, cfg.seed, cfg.init_logit_scale)
    pool = pool_positions(ids, text_tower(model))  # [N]
    mean = torch.tensor(pre["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"]).view(1, 3, 1, 1)
    opt = make_optimizer(model, cfg)
    start = _resume(out_dir / STATE_NAME, model, opt, cfg, data_id, restart_on_change)
    n = len(pairs)
    groups = caption_groups([c for _, c in pairs], OBJECT_WORDS) if cfg.hard_negatives else []
    caption_ids = _caption_ids([c for _, c in pairs])  # [N] equal ids for equal captions
    if n < cfg.batch_size:
        raise ValueError(f"{list_path}: {n} images, fewer than batch_size={cfg.batch_size}")

    def step(i: int) -> StepLog:
        idx = mixed_batch(i, n, cfg.batch_size, cfg.seed, groups, cfg.hard_negatives)  # [B]
        x = ((images[idx].float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)  # [B, 3, S, S]
        img = F.normalize(model.encode_image(x), dim=-1)  # [B, D]
        txt = run_text_tower_bucketed(model, ids[idx], pool[idx], n_buckets=4)  # [B, D]
        if cfg.same_caption_positives:
            loss = same_caption_loss(img, txt, model.logit_scale.exp(), caption_ids[idx])
        else:
            loss = contrastive_loss(img, txt, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)  # as CLIP: temperature capped at 100
        value = loss.item()
        return StepLog((f"{value:.5f}", f"{model.logit_scale.exp().item():.3f}"), value)

    def checkpoint(step: int) -> None:
        atomic_torch_save(
            {
                "config": to_dict(cfg),
                "data": data_id,
                "step": step,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
            },
            out_dir / STATE_NAME,
        )

    loop = Loop(out_dir / LOG_NAME, ("loss", "logit_scale"), cfg.steps, "pretraining demo CLIP", cfg.checkpoint_every)
    loop.run(start, cfg.steps, opt, lambda i: lr_at(i, cfg.lr, cfg.warmup_steps, cfg.steps), step, checkpoint)
    model.eval()
    (out_dir / TRAINED_NAME).unlink(missing_ok=True)  # the record goes last: a half-saved model is never reused
    folder = save_clip(model, model_cfg, pre, out_dir / "clip")
    atomic_write_json(out_dir / TRAINED_NAME, {"config": to_dict(cfg), "data": data_id})
    (out_dir / STATE_NAME).unlink(missing_ok=True)
    return folder


def same_caption_loss(
    image_feats: torch.Tensor, text_feats: torch.Tensor, logit_scale: torch.Tensor, caption_ids: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric contrastive loss where pairs with the same caption text are all positives.

    A world of short captions repeats them (`a photo of a star` fits many images); CLIP's loss would
    push each image away from the identical captions of the others and cancel the very signal those
    captions carry. With every caption distinct this is exactly `contrastive_loss`.
    """
    logits = logit_scale * image_feats @ text_feats.T  # [B, B]
    positive = (caption_ids[:, None] == caption_ids[None, :]).to(logits.dtype)  # [B, B], symmetric
    target = positive / positive.sum(dim=1, keepdim=True)  # [B, B] rows sum to 1
    return (
        -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
        - (target * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    ) / 2


def _caption_ids(captions: list[str]) -> torch.Tensor:
    first: dict[str, int] = {}
    return torch.tensor([first.setdefault(c, len(first)) for c in captions], dtype=torch.long)


def _already_trained(out_dir: Path, cfg: DemoClipConfig, data_id: str) -> bool:
    """A finished model of these settings, data and code is reused: stepping through the notebook
    again (or a `dvc repro` after an unrelated change) never retrains it over the DVC output."""
    record = out_dir / TRAINED_NAME
    if not record.is_file() or not (out_dir / "clip").is_dir():
        return False
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return False  # a damaged record: train again
    return saved.get("config") == to_dict(cfg) and saved.get("data") == data_id


def _resume(path: Path, model, opt, cfg: DemoClipConfig, data_id: str, restart_on_change: bool) -> int:
    if not path.exists():
        return 0
    state = read_checkpoint(path)
    if state["config"] != to_dict(cfg) or state.get("data") != data_id:
        if not restart_on_change:
            raise ValueError(f"{path}: saved pretraining state has other settings or data; delete it to start over")
        log.warning("%s: settings or training data changed since this state was saved; starting over", path)
        path.unlink()
        return 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    log.info("resuming demo CLIP pretraining at step %d", state["step"])
    return int(state["step"])
