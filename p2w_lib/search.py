"""Compose a query from any image and any text, and search any folder of images."""
from __future__ import annotations

from pathlib import Path

from .clip_backbone import FrozenClip
from .composed import PLACEHOLDER
from .features import embed_images
from .mapper import Mapper
from .queries import compose_queries
from .retrieval import topk_search

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
        raise SearchInputError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found; the gallery is empty")
    return files


def build_prompt(text: str) -> str:
    """Use `text` as the prompt if it has `*`, else Pic2Word's `a photo of * , {text}`."""
    text = text.strip()
    n = text.count(PLACEHOLDER)
    if n > 1:
        raise SearchInputError(f"the text {text!r} has {n} placeholders {PLACEHOLDER!r}; the query image fills one. "
                               f"Write one {PLACEHOLDER} (e.g. 'a sketch of {PLACEHOLDER}') or none")
    return text if n else f"a photo of {PLACEHOLDER} , {text}"


def check_search_inputs(image: str | Path, text: str, gallery: str | Path, k: int) -> list[str]:
    """Every argument checked before any model is loaded; returns the gallery's files."""
    if not Path(image).is_file():
        raise FileNotFoundError(f"{image}: query image not found")
    if k < 1:
        raise SearchInputError(f"k={k}: ask for at least one result (--k 10)")
    build_prompt(text)
    return gallery_files(gallery)


def search(clip: FrozenClip, mapper: Mapper, image: str | Path, text: str, gallery: str | Path, k: int = 10,
           method: str = "pic2word", cache_dir=None) -> list[tuple[str, float]]:
    """The `k` gallery images closest to (image, text), best first, with cosine scores."""
    files = check_search_inputs(image, text, gallery, k)
    emb = embed_images(clip, files, cache_dir=cache_dir, max_bad_fraction=1.0, desc="embedding gallery")
    keep = [f for f, ok in zip(files, emb.valid) if ok]
    feats = emb.tensor(normalize=True)[emb.valid]
    ref = embed_images(clip, [str(image)], max_bad_fraction=0.0, desc="embedding query").tensor()
    prompt = build_prompt(text)
    query = compose_queries(clip, mapper, ref, [prompt], methods=[method])[method]
    scores, idx = topk_search(query, feats, k=min(k, len(keep)))
    return [(keep[i], s) for i, s in zip(idx[0].tolist(), scores[0].tolist())]
