"""Compose a query from any image and any text, and search any folder of images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import PLACEHOLDER
from p2w_lib.clip.features import embed_images
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import compose_queries
from p2w_lib.retrieval.faiss_index import IvfConfig, load_or_build_ivf, search_ivf
from p2w_lib.retrieval.topk import topk_search

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class SearchInputError(ValueError):
    """A search argument is unusable; the message says which and what to pass instead."""


def gallery_files(folder: str | Path) -> list[str]:
    """Every image file under `folder` (recursively), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: gallery folder not found; pass a folder of images")
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SearchInputError(
            f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found; the gallery is empty"
        )
    return files


def build_prompt(text: str) -> str:
    """Use `text` as the prompt if it has `*`, else Pic2Word's `a photo of * , {text}`."""
    text = text.strip()
    n = text.count(PLACEHOLDER)
    if n > 1:
        raise SearchInputError(
            f"the text {text!r} has {n} placeholders {PLACEHOLDER!r}; the query image fills one. "
            f"Write one {PLACEHOLDER} (e.g. 'a sketch of {PLACEHOLDER}') or none"
        )
    return text if n else f"a photo of {PLACEHOLDER} , {text}"


def check_search_inputs(image: str | Path, text: str, gallery: str | Path, k: int) -> list[str]:
    """Every argument checked before any model is loaded; returns the gallery's files."""
    if not Path(image).is_file():
        raise FileNotFoundError(f"{image}: query image not found")
    if k < 1:
        raise SearchInputError(f"k={k}: ask for at least one result (--k 10)")
    build_prompt(text)
    return gallery_files(gallery)


@dataclass
class GalleryIndex:
    """A folder's images embedded once (normalised [N, D]); searching it again costs one query.

    approx: a faiss IVF index (ann.py) for libraries of a million images and more, stored beside
    the embedding cache; None searches exhaustively (exact, the default)."""

    folder: str
    files: list[str]
    feats: torch.Tensor  # [N, D] normalised
    approx: object | None = None

    @classmethod
    def build(
        cls, clip: FrozenClip, folder: str | Path, cache_dir=None, approximate: bool = False, nprobe: int = 32
    ) -> GalleryIndex:
        files = gallery_files(folder)
        emb = embed_images(clip, files, cache_dir=cache_dir, max_bad_fraction=1.0, desc="embedding gallery")
        keep = [f for f, ok in zip(files, emb.valid) if ok]
        feats = emb.tensor(normalize=True)[emb.valid]  # [N, D]
        index = None
        if approximate:
            # Named after the embedding entry, so a changed file or CLIP gets a new index (no second hashing pass).
            index = load_or_build_ivf(feats, cache_dir, emb.key or "", IvfConfig(nprobe=nprobe))
        return cls(str(folder), keep, feats, index)

    def _top(self, query: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.approx is None:
            return topk_search(query, self.feats, k=k)

        return search_ivf(self.approx, query, k)

    def search(
        self,
        clip: FrozenClip,
        mapper: Mapper,
        ref: torch.Tensor,
        text: str,
        k: int,
        methods: Sequence[str] = ("pic2word",),
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, list[tuple[str, float]]]:
        """Top-k (path, cosine) per method for the reference embedding `ref` [1, D] and `text`;
        options: per-method settings (registry.compose_queries); a search names no benchmark, so Slerp
        runs at its alpha there or at slerp.DEFAULT_ALPHA."""
        queries = compose_queries(clip, mapper, ref, [build_prompt(text)], methods=list(methods), options=options)
        out = {}
        for method in methods:
            scores, idx = self._top(queries[method], min(k, len(self.files)))
            out[method] = [(self.files[i], s) for i, s in zip(idx[0].tolist(), scores[0].tolist()) if i >= 0]
        return out


def embed_query(clip: FrozenClip, image: str | Path) -> torch.Tensor:
    """The query image's unnormalised embedding [1, D] (what the mapper eats)."""
    return embed_images(clip, [str(image)], max_bad_fraction=0.0, desc="embedding query").tensor()


def search(
    clip: FrozenClip,
    mapper: Mapper,
    image: str | Path,
    text: str,
    gallery: str | Path,
    k: int = 10,
    method: str = "pic2word",
    cache_dir=None,
    approximate: bool = False,
    nprobe: int = 32,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[tuple[str, float]]:
    """The `k` gallery images closest to (image, text), best first, with cosine scores.

    approximate: search a faiss IVF index (built once, kept in cache_dir) scanning `nprobe` cells,
    for galleries beyond about a million images; exact search otherwise."""
    check_search_inputs(image, text, gallery, k)
    index = GalleryIndex.build(clip, gallery, cache_dir, approximate=approximate, nprobe=nprobe)
    return index.search(clip, mapper, embed_query(clip, image), text, k, methods=[method], options=options)[method]
