"""Image embeddings with an on-disk cache.

CLIP is frozen, so an image's embedding never changes: training and every evaluation read
them from a cache keyed by (CLIP weights fingerprint, preprocessing, image list with each file's
size and content fingerprint). The fingerprint hashes a file's first and last 64 KiB, which is
the whole file for almost every image, so a file replaced by another of the same size (even with
its modification time kept, as `cp -p`, `rsync -a` or `tar x` do) gets a new entry; no time stamp
is used. Members of WebDataset shards are keyed by their shard's size and change times instead
(hashing multi-GB shards on every run would cost more than it saves).

Embeddings are stored *unnormalised* (the mapper eats those) in a memory-mapped .npy, so a
multi-million-image cache never has to fit in RAM. Each of an entry's three files is written
atomically and the metadata last, so concurrent writers and readers only ever see complete
entries; a damaged entry is recomputed, with a warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import pool_positions, run_text_tower_bucketed, text_tower
from p2w_lib.core.files import (
    atomic_path,
    atomic_save_npy,
    atomic_write_json,
    remove_stale_tmp,
)
from p2w_lib.data.images import BadImageReport, ImageListDataset
from p2w_lib.data.webdataset import is_member_ref, split_ref

log = logging.getLogger(__name__)


def augment_transform(clip: FrozenClip, scale: tuple[float, float]):
    """The original training augmentation: RandomResizedCrop(scale), bicubic, then CLIP's normalisation."""
    from torchvision import transforms

    pre = clip.model.visual.preprocess_cfg
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(
                clip.image_size, scale=tuple(scale), interpolation=transforms.InterpolationMode.BICUBIC
            ),
            transforms.ToTensor(),
            transforms.Normalize(pre["mean"], pre["std"]),
        ]
    )


@dataclass(frozen=True)
class AugmentedView:
    """View `index` of the training augmentation: the same crop of an image on every run and in
    every process (seeded by seed, index and the image's path), so a cache of it is reusable."""

    index: int
    scale: tuple[float, float]
    seed: int = 0

    def key(self) -> str:
        return f"view{self.index}:scale{tuple(self.scale)}:seed{self.seed}"

    def dataset(self, clip: FrozenClip, paths: list[str]) -> ImageListDataset:
        return _SeededImages(paths, augment_transform(clip, self.scale), clip.image_size, salt=self.key())


class _SeededImages(ImageListDataset):
    """Images whose random transform draws from a generator seeded by (salt, path)."""

    def __init__(self, paths, transform, image_size: int, salt: str):
        super().__init__(paths, transform, image_size)
        self.salt = salt

    def __getitem__(self, i: int):
        digest = hashlib.blake2b(f"{self.salt}|{self.paths[i]}".encode(), digest_size=8).digest()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
            return super().__getitem__(i)


@dataclass
class ImageEmbeddings:
    """Unnormalised embeddings [N, D] of `paths`; rows of unreadable images are zero and `valid` False."""

    paths: list[str]
    features: np.ndarray  # [N, D] float32 (possibly a read-only memmap)
    valid: np.ndarray  # [N] bool
    report: BadImageReport
    from_cache: bool = False
    key: str | None = None  # the cache entry's key (None when not cached): what derived indexes are named after

    def tensor(self, normalize: bool = False) -> torch.Tensor:
        feats = torch.from_numpy(np.array(self.features, dtype=np.float32))  # [N, D], copied out of the memmap
        return torch.nn.functional.normalize(feats, dim=-1) if normalize else feats


FINGERPRINT_BYTES = 64 * 1024  # hashed from each end of a file


def content_fingerprint(path: str) -> str:
    """Hash of a file's size, first and last FINGERPRINT_BYTES (all of any file up to 128 KiB)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        h.update(fh.read(FINGERPRINT_BYTES))
        if size > 2 * FINGERPRINT_BYTES:
            fh.seek(size - FINGERPRINT_BYTES)
        h.update(fh.read(FINGERPRINT_BYTES))
    return h.hexdigest()


def _file_stamp(path: str) -> list:
    try:
        if is_member_ref(path):  # a shard member: stamp its shard (ctime changes on any rewrite)
            st = os.stat(split_ref(path)[0])
            return [path, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        return [path, content_fingerprint(path)]
    except FileNotFoundError:
        return [path, "missing"]
    except OSError as err:  # unreadable (permissions, I/O): stamped as such, reported when embedded
        return [path, f"unreadable: {err.strerror}"]


CACHE_DTYPES = {"float32": np.float32, "float16": np.float16}


def cache_key(clip: FrozenClip, paths: Sequence[str], dtype: str = "float32", view: AugmentedView | None = None) -> str:
    """Key of an embedding cache entry: changes when the weights, preprocessing, view, dtype or any file does."""
    h = hashlib.sha256()
    settings = {"clip": clip.identity.fingerprint, "preprocess": repr(clip.preprocess), "dtype": dtype}
    if view is not None:
        settings["view"] = view.key()
    h.update(json.dumps(settings).encode())
    for p in paths:
        h.update(json.dumps(_file_stamp(p)).encode())
    return h.hexdigest()[:24]


def _compute(
    clip: FrozenClip,
    paths: list[str],
    out: np.ndarray,
    batch_size: int,
    num_workers: int,
    desc: str,
    view: AugmentedView | None = None,
):
    dataset = view.dataset(clip, paths) if view else ImageListDataset(paths, clip.preprocess, clip.image_size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    valid = np.ones(len(paths), dtype=bool)
    report = BadImageReport(total=len(paths))
    for images, idx, errors in tqdm(loader, desc=desc, unit="batch", leave=False):
        feats = clip.encode_image(images).cpu().numpy()  # [B, D]
        idx = idx.numpy()
        out[idx] = feats
        for i, err in zip(idx, errors):
            if err:
                valid[i] = False
                out[i] = 0.0
                report.add(paths[i], err)
    return valid, report


def embed_images(
    clip: FrozenClip,
    paths: Sequence[str | Path],
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
    num_workers: int | None = None,
    max_bad_fraction: float = 0.01,
    desc: str = "embedding images",
    dtype: str = "float32",
    view: AugmentedView | None = None,
) -> ImageEmbeddings:
    """Embed `paths` with `clip`, reading/writing the cache in `cache_dir` when given.

    num_workers: DataLoader processes decoding images; None = none on CPU, up to 8 on a GPU, where
    JPEG decoding would otherwise starve the encoder (CIRCO's gallery alone is 123k images).

    Unreadable files are skipped, counted and logged; more than `max_bad_fraction` of them
    raises BadImagesError naming examples. dtype="float16" halves the cache (3M ViT-L/14
    embeddings: 4.6 GB instead of 9.2 GB); it is memory-mapped either way. view: embed an
    augmented view instead of the plain preprocessed image (a cache entry of its own).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"{desc}: the image list is empty")
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1) if clip.device.type == "cuda" else 0
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"cache dtype {dtype!r} is not one of {sorted(CACHE_DTYPES)}")
    key = cache_key(clip, paths, dtype, view) if cache_dir is not None else None
    if key is not None:
        cached = _read_cache(Path(cache_dir), key, paths)
        if cached is not None:
            cached.report.check(max_bad_fraction)
            return cached
    dim = clip.embed_dim
    if key is None:
        feats = np.zeros((len(paths), dim), dtype=np.float32)
        valid, report = _compute(clip, paths, feats, batch_size, num_workers, desc, view)
    else:
        feats, valid, report = _write_cache(
            clip, Path(cache_dir), key, paths, batch_size, num_workers, desc, dtype, view
        )
    if report.n_bad:
        log.warning("%s: %s", desc, report.summary())
    report.check(max_bad_fraction)
    return ImageEmbeddings(paths, feats, valid, report, key=key)


def _write_cache(clip, cache_dir: Path, key: str, paths, batch_size, num_workers, desc, dtype: str, view=None):
    return _store_cache(
        clip,
        cache_dir,
        key,
        len(paths),
        dtype,
        lambda out: _compute(clip, paths, out, batch_size, num_workers, desc, view),
    )


def _store_cache(clip, cache_dir: Path, key: str, n: int, dtype: str, fill):
    """Create cache entry `key`: `fill(memmap [n, D])` writes the rows and returns (valid, report)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_tmp(cache_dir):
        log.info("embedding cache: removed %s, left by a writer that was killed", stale)
    with atomic_path(cache_dir / f"{key}.npy") as tmp:
        feats = np.lib.format.open_memmap(tmp, mode="w+", dtype=CACHE_DTYPES[dtype], shape=(n, clip.embed_dim))
        valid, report = fill(feats)
        feats.flush()
        del feats
    atomic_save_npy(cache_dir / f"{key}.valid.npy", valid)
    # The metadata file is written last: its presence marks a complete entry.
    atomic_write_json(cache_dir / f"{key}.json", {"n": n, "clip": clip.identity.to_dict(), "bad": report.bad})
    feats = np.load(cache_dir / f"{key}.npy", mmap_mode="r")
    return feats, valid, report


def _read_cache(cache_dir: Path, key: str, paths: list[str]) -> ImageEmbeddings | None:
    meta_path = cache_dir / f"{key}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        feats = np.load(cache_dir / f"{key}.npy", mmap_mode="r")
        valid = np.load(cache_dir / f"{key}.valid.npy")
        if feats.shape[0] != len(paths) or meta["n"] != len(paths) or valid.shape != (len(paths),):
            raise ValueError(f"{feats.shape[0]} rows for {len(paths)} images")
        report = BadImageReport(total=len(paths), bad=dict(meta["bad"]))
    except (OSError, ValueError, EOFError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
        log.warning(
            "embedding cache entry %s is damaged (%s: %s); recomputing it. To clear the whole cache, delete %s",
            cache_dir / key,
            type(err).__name__,
            err,
            cache_dir,
        )
        return None
    return ImageEmbeddings(paths, feats, valid, report, from_cache=True, key=key)


def embed_images_sharded(
    clip: FrozenClip, paths: Sequence[str | Path], cache_dir: str | Path, rank: int, world: int, **kwargs
) -> ImageEmbeddings:
    """`embed_images` with the work split over `world` processes (torch.distributed).

    Each rank embeds every `world`-th image into its own cache entry; rank 0 then interleaves the
    shards into the entry of the full list, which every rank reads. Same result as one process.
    """
    import torch.distributed as dist

    paths = [str(p) for p in paths]
    cache_dir = Path(cache_dir)
    dtype = kwargs.get("dtype", "float32")
    key = cache_key(clip, paths, dtype, kwargs.get("view"))
    if (cache_dir / f"{key}.json").is_file():  # complete, e.g. from an earlier run: every rank just reads it
        return embed_images(clip, paths, cache_dir=cache_dir, **kwargs)
    shard_kwargs = {**kwargs, "max_bad_fraction": 1.0, "desc": f"embedding shard {rank}/{world}"}
    embed_images(clip, paths[rank::world], cache_dir=cache_dir, **shard_kwargs)
    dist.barrier()
    if rank == 0:
        shards = [
            embed_images(clip, paths[r::world], cache_dir=cache_dir, **shard_kwargs) for r in range(world)
        ]  # cache hits

        def interleave(out):
            valid = np.zeros(len(paths), dtype=bool)
            report = BadImageReport(total=len(paths))
            for r, shard in enumerate(shards):
                out[r::world] = shard.features
                valid[r::world] = shard.valid
                report.bad.update(shard.report.bad)
            return valid, report

        _store_cache(clip, cache_dir, key, len(paths), dtype, interleave)
    dist.barrier()
    return embed_images(clip, paths, cache_dir=cache_dir, **kwargs)


@torch.no_grad()
def caption_embeddings(clip: FrozenClip, captions: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    """Unnormalised text embeddings [N, D] (LinCIR's targets and phi's clean inputs, SEARLE's
    phrases); each batch runs only up to its longest caption (exact, run_text_tower_bucketed)."""
    tower = text_tower(clip.model)
    out = []
    for i in tqdm(range(0, len(captions), batch_size), desc="embedding captions", unit="batch", leave=False):
        ids = clip.tokenizer(list(captions[i : i + batch_size]))  # [B, L]
        out.append(run_text_tower_bucketed(clip.model, ids, pool_positions(ids, tower), normalize=False).float().cpu())
    return torch.cat(out)  # [N, D]
