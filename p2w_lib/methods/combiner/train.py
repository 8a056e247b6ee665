"""Training Combiner on labeled triplets over frozen CLIP features, and loading a trained one.

One step, as CLIP4Cir `combiner_train.py` (drop_last batches of shuffled triplets):
    reference, target -> CLIP image features r, g [B, D]; a caption form -> CLIP text features t [B, D]
    q = Combiner(r, t);  loss = CE(100 q . normalise(g)^T, arange(B))
CLIP is frozen, so every image and every caption form is embedded once before the first step (the
original re-encodes them each step; the same numbers, far fewer passes). The batch order and the
caption form of each triplet are pure functions of (seed, step), and the checkpoint carries the
dropout RNG, so a resumed run equals an uninterrupted one.

Checkpoint (a dict, saved atomically):
    {"format": "p2w_lib.combiner/1", "combiner": state_dict, "shape": {...}, "clip": ClipIdentity dict,
     "train": CombinerConfig, "source": "fashion_iq" | "cirr", "data": sha256 of the triplets,
     "code": id, "step": int, "optimizer": ..., "rng": ...}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.features import caption_embeddings, embed_images
from p2w_lib.core.config import to_dict, validate
from p2w_lib.core.files import atomic_torch_save
from p2w_lib.methods.combiner.config import CombinerConfig
from p2w_lib.methods.combiner.network import Combiner, CombinerShape, in_batch_loss, shape_of_state
from p2w_lib.methods.combiner.triplets import LabeledTriplets, training_forms
from p2w_lib.training.checkpoint import CheckpointError, read_checkpoint
from p2w_lib.training.loop import Loop, StepLog, step_generator
from p2w_lib.training.provenance import code_fingerprint
from p2w_lib.training.schedule import batch_indices
from p2w_lib.training.state import rng_state, set_rng_state

log = logging.getLogger(__name__)

FORMAT = "p2w_lib.combiner/1"
CHECKPOINT_NAME = "combiner.pt"
LOG_NAME = "train_log.csv"
RESUME_FREE = frozenset(
    {"fashion_iq", "cirr", "checkpoint_every", "log_every"}
)  # settings a run may change and still resume


@dataclass
class CombinerResult:
    combiner: Combiner
    steps: int
    last_loss: float
    checkpoint: Path
    log_csv: Path


@dataclass(frozen=True)
class TripletFeatures:
    """Every feature a training run reads, computed once: images [I, D] and caption forms [T, D]
    (unnormalised), and per triplet its rows: reference [N], target [N], forms [N, F]."""

    images: torch.Tensor
    texts: torch.Tensor
    reference: torch.Tensor
    target: torch.Tensor
    forms: torch.Tensor


def triplet_features(clip: FrozenClip, triplets: LabeledTriplets, cache_dir=None) -> TripletFeatures:
    paths = sorted(set(triplets.references) | set(triplets.targets))
    row = {path: i for i, path in enumerate(paths)}
    emb = embed_images(
        clip, paths, cache_dir=cache_dir, max_bad_fraction=0.0, desc=f"embedding {triplets.source} triplets"
    )
    forms = [training_forms(c) for c in triplets.captions]
    if len({len(f) for f in forms}) != 1:
        raise ValueError(f"{triplets.source}: triplets mix one- and two-caption annotations")
    texts = sorted({t for f in forms for t in f})
    text_row = {t: i for i, t in enumerate(texts)}
    return TripletFeatures(
        images=emb.tensor().float(),
        texts=caption_embeddings(clip, texts),
        reference=torch.tensor([row[p] for p in triplets.references]),
        target=torch.tensor([row[p] for p in triplets.targets]),
        forms=torch.tensor([[text_row[t] for t in f] for f in forms]),
    )


def combiner_shape(clip: FrozenClip, cfg: CombinerConfig) -> CombinerShape:
    d = clip.embed_dim
    return CombinerShape(d, cfg.projection_mult * d, cfg.hidden_mult * d)


def steps_of(n: int, cfg: CombinerConfig) -> int:
    """Total steps: `epochs` passes of whole batches (the original drops the last, partial one)."""
    return cfg.epochs * (n // cfg.batch_size)


def batch_loss(net: Combiner, feats: TripletFeatures, step: int, cfg: CombinerConfig, device) -> torch.Tensor:
    """The loss of one step: its batch of triplets, each with the caption form drawn for it."""
    idx = batch_indices(step, feats.reference.shape[0], cfg.batch_size, cfg.seed)  # [B]
    pick = torch.randint(feats.forms.shape[1], (idx.shape[0],), generator=step_generator(cfg.seed, step))  # [B]
    text = feats.texts[feats.forms[idx, pick]].to(device)  # [B, D]
    ref = feats.images[feats.reference[idx]].to(device)  # [B, D]
    tgt = feats.images[feats.target[idx]].to(device)  # [B, D]
    return in_batch_loss(net(ref, text), tgt)


class StaleCombinerCheckpoint(CheckpointError):
    """A Combiner checkpoint of another run: other settings, CLIP, triplets or code."""


@dataclass(frozen=True)
class CombinerRun:
    """One training run: where it lives and what makes it this run and no other."""

    clip: FrozenClip
    cfg: CombinerConfig
    source: str
    data_id: str
    code_id: str
    out_dir: Path

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    @property
    def log(self) -> Path:
        return self.out_dir / LOG_NAME

    def save(self, net: Combiner, step: int, total: int, optimizer: torch.optim.Optimizer) -> None:
        atomic_torch_save(
            {
                "format": FORMAT,
                "combiner": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "shape": vars(net.shape),
                "clip": self.clip.identity.to_dict(),
                "train": to_dict(self.cfg),
                "source": self.source,
                "data": self.data_id,
                "code": self.code_id,
                "step": step,
                "total_steps": total,
                "optimizer": optimizer.state_dict(),
                "rng": rng_state(),
            },
            self.checkpoint,
        )

    def changes(self, ckpt: dict) -> set[str]:
        saved = {k: v for k, v in ckpt.get("train", {}).items() if k not in RESUME_FREE}
        changed = {k for k, v in to_dict(self.cfg).items() if k not in RESUME_FREE and saved.get(k) != v}
        for name, ours, theirs in (
            ("clip", self.clip.identity.fingerprint, ckpt.get("clip", {}).get("fingerprint")),
            ("triplet source", self.source, ckpt.get("source")),
            ("training triplets", self.data_id, ckpt.get("data")),
            ("training code", self.code_id, ckpt.get("code")),
        ):
            if ours != theirs:
                changed.add(name)
        return changed

    def start(self, net: Combiner, optimizer: torch.optim.Optimizer, restart_on_change: bool) -> int:
        """The step to resume from (0 without a checkpoint); a stale checkpoint raises, or is deleted
        with its log when `restart_on_change`."""
        if not self.checkpoint.exists():
            return 0
        ckpt = read_checkpoint(self.checkpoint, "Combiner checkpoint")
        if ckpt.get("format") != FORMAT or "optimizer" not in ckpt:
            raise CheckpointError(
                f"{self.checkpoint}: not a resumable Combiner checkpoint; delete it or use another folder"
            )
        changed = self.changes(ckpt)
        if changed:
            err = StaleCombinerCheckpoint(f"{self.checkpoint}: cannot resume, these differ: {sorted(changed)}")
            if not restart_on_change:
                raise err
            log.warning("%s; starting over", err)
            self.checkpoint.unlink()
            self.log.unlink(missing_ok=True)
            return 0
        net.load_state_dict(ckpt["combiner"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        return int(ckpt["step"])


def train_combiner(
    clip: FrozenClip,
    triplets: LabeledTriplets,
    cfg: CombinerConfig,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    until_step: int | None = None,
    restart_on_change: bool = False,
) -> CombinerResult:
    """Train (or resume) a Combiner on `triplets`; checkpoint and loss log go to `out_dir`.

    restart_on_change: a checkpoint of other settings, CLIP, triplets or code is deleted and training
    starts over (the pipeline); by default it is an error, so a direct call never discards a run.
    """
    validate(cfg)
    if len(triplets) < cfg.batch_size:
        raise ValueError(
            f"{triplets.source}: {len(triplets)} training triplets but a batch of {cfg.batch_size}; "
            "lower combiner.batch_size or add triplets"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    feats = triplet_features(clip, triplets, cache_dir)
    torch.manual_seed(cfg.seed)  # the initialisation and the dropout
    net = Combiner(combiner_shape(clip, cfg)).to(clip.device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)  # torch's defaults otherwise, as the original
    run = CombinerRun(clip, cfg, triplets.source, triplets.identity, code_fingerprint(__name__), out_dir)
    start = run.start(net, opt, restart_on_change)
    total = steps_of(len(triplets), cfg)
    stop = total if until_step is None else min(total, until_step)
    per_epoch = len(triplets) // cfg.batch_size

    def step(i: int) -> StepLog:
        loss = batch_loss(net, feats, i, cfg, clip.device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        return StepLog((i // per_epoch, f"{value:.6f}"), value)

    net.train()
    desc = f"training Combiner on {triplets.source}"
    loop = Loop(run.log, ("epoch", "loss"), total, desc, cfg.checkpoint_every, cfg.log_every)
    loss = loop.run(start, stop, opt, lambda i: cfg.lr, step, lambda i: run.save(net, i, total, opt))
    if stop > start or not run.checkpoint.exists():
        run.save(net, stop, total, opt)
    net.eval()
    return CombinerResult(combiner=net, steps=stop, last_loss=loss, checkpoint=run.checkpoint, log_csv=run.log)


def load_combiner(path: str | Path, clip: FrozenClip) -> Combiner:
    """A trained Combiner for `clip`, in eval mode: ours (refused when trained on other CLIP weights),
    or a CLIP4Cir release (`{"Combiner": state_dict}`, trained on OpenAI RN50x4 features: refused for a
    CLIP of another width)."""
    path = Path(path)
    ckpt = read_checkpoint(
        path,
        "Combiner checkpoint",
        "train it first (`make reproduce`), or name a CLIP4Cir release in eval.combiner_checkpoint",
    )
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        if ckpt["clip"]["fingerprint"] != clip.identity.fingerprint:
            raise CheckpointError(
                f"{path}: this Combiner was trained on the features of another CLIP ({ckpt['clip'].get('model')}); "
                f"the CLIP in use is {clip.identity.model}. Retrain it (`make reproduce`) for this CLIP."
            )
        shape, state = CombinerShape(**ckpt["shape"]), ckpt["combiner"]
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("Combiner"), dict):
        state = {k.removeprefix("module."): v for k, v in ckpt["Combiner"].items()}
        try:
            shape = shape_of_state(state)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err
    else:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: unknown checkpoint format (top-level keys {keys}); expected a p2w_lib Combiner "
            "checkpoint or a CLIP4Cir file with a 'Combiner' state dict"
        )
    if shape.clip_dim != clip.embed_dim:
        raise CheckpointError(
            f"{path}: this Combiner fuses {shape.clip_dim}-d CLIP features (CLIP4Cir's releases: OpenAI RN50x4, "
            f"640-d), but the CLIP in use ({clip.identity.model}) embeds {clip.embed_dim}-d. Set the profile's "
            "clip.model to the Combiner's CLIP (RN50x4 for CLIP4Cir's releases), or train one for this CLIP."
        )
    net = Combiner(shape)
    net.load_state_dict(state)
    return net.to(clip.device).eval()
