"""Benchmarks, measured side by side in one process: `python -m p2w_lib.tools.bench`.

train: the original recipe's step (image encoder forward under no_grad every step, text
    transformer over the full 77-token context) against ours (cached image embeddings, context
    truncated to the prompt) and ours with the prompt prefix's keys/values cached (only `*` and
    the end-of-text token run), on the same model, batch and mapper weights.
augmentation: image-encoder cost per training image of re-encoding every epoch vs K cached views.
search: faiss IVF against exact search on a synthetic 1M-image gallery (recall@10, queries/s).
eval: a first evaluation run (gallery and queries embedded) against a re-run with the embedding
    cache warm, and composed-query throughput.
Prints a table and writes results/bench/*.json. Timings are medians of repeats; the achieved
GFLOP/s come from torch's FLOP counter over one step, against this machine's measured matmul rate.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from p2w_lib.clip.backbone import load_clip
from p2w_lib.clip.composed import (
    ComposedTokens,
    encode_composed_tokens,
    tokenize_prompts,
)
from p2w_lib.clip.features import AugmentedView, embed_images
from p2w_lib.clip.prefix_cache import PrefixCachedText
from p2w_lib.core.config import ClipConfig
from p2w_lib.core.files import atomic_write_json
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import compose_queries
from p2w_lib.retrieval.faiss_index import (
    IvfConfig,
    build_ivf,
    clustered_embeddings,
    search_ivf,
)
from p2w_lib.retrieval.topk import topk_search
from p2w_lib.training.loss import contrastive_loss


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """This machine's float32 matmul rate (GFLOP/s), the yardstick for achieved rates."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def _median_time(fn, warmup: int, repeats: int) -> float:
    return _interleaved_median_times({"only": fn}, warmup, repeats)["only"]


def _interleaved_median_times(fns: dict, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in rounds that call each once, so a slow
    spell of the machine (another process, frequency scaling) hits every path alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


TextEncoder = Callable[[ComposedTokens, torch.Tensor], torch.Tensor]


def _loss(clip, mapper, tokens: ComposedTokens, feats: torch.Tensor, encode: TextEncoder) -> torch.Tensor:
    text = encode(tokens, mapper(feats))  # [B, D]
    return contrastive_loss(F.normalize(feats, dim=-1), text, clip.logit_scale)


def text_encoders(clip) -> dict[str, TextEncoder]:
    """The three ways a training step can encode `a photo of *`, all exact."""
    return {
        "full": lambda t, p: encode_composed_tokens(clip.model, t, p, truncate=False),  # 77 positions
        "truncated": lambda t, p: encode_composed_tokens(clip.model, t, p, truncate=True),  # the prompt's 6
        "prefix": PrefixCachedText(clip.model).encode,  # `*` and end-of-text only
    }


# name: (image features recomputed every step?, text encoder)
TRAIN_PATHS = {"reference": (True, "full"), "truncated": (False, "truncated"), "prefix-cached": (False, "prefix")}


def bench_train_step(model: str, batch: int, warmup: int, repeats: int, seed: int = 0) -> dict:
    """Steps/s, FLOPs and loss of the original step and our two exact shortcuts, on one batch and mapper."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip(ClipConfig(model=model, pretrained=None, init_seed=seed))
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, clip.image_size, clip.image_size, generator=gen)  # [B, 3, H, W]
    cached = clip.encode_image(images)  # [B, D]: what the embedding cache holds for these images
    one = tokenize_prompts(clip.model, clip.tokenizer, ["a photo of *"])
    tokens = ComposedTokens(one.ids.expand(batch, -1), one.star_pos.expand(batch), one.pool_pos.expand(batch))
    torch.manual_seed(seed)
    base = Mapper(clip.embed_dim, clip.token_dim)
    encoders = text_encoders(clip)

    def make_step(recompute: bool, encode: TextEncoder):
        mapper = copy.deepcopy(base).train()
        opt = torch.optim.AdamW(mapper.parameters(), lr=1e-4)

        def step():
            loss = _loss(clip, mapper, tokens, clip.encode_image(images) if recompute else cached, encode)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    probe = copy.deepcopy(base).eval()  # dropout off, so every path computes one function
    rows, steps = {}, {}
    for name, (recompute, text) in TRAIN_PATHS.items():
        with torch.no_grad():
            loss = _loss(clip, probe, tokens, clip.encode_image(images) if recompute else cached, encoders[text]).item()
        steps[name] = make_step(recompute, encoders[text])
        rows[name] = {"gflop_per_step": _flops(steps[name]) / 1e9, "loss": loss}
    for name, seconds in _interleaved_median_times(steps, warmup, repeats).items():
        rows[name]["steps_per_s"] = 1 / seconds
    peak = matmul_gflops()
    ref = rows["reference"]
    for row in rows.values():
        row["speedup"] = row["steps_per_s"] / ref["steps_per_s"]
        row["gflops_achieved"] = row["gflop_per_step"] * row["steps_per_s"]
        row["abs_loss_diff"] = abs(row["loss"] - ref["loss"])
    return {
        "model": model,
        "batch": batch,
        "prompt_tokens": int(one.pool_pos.max()) + 1,
        "context": int(one.ids.shape[1]),
        "paths": rows,
        "matmul_gflops_measured": peak,
        "warmup": warmup,
        "repeats": repeats,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def print_train(train: dict) -> None:
    print(
        f"train step, {train['model']}, batch {train['batch']}, prompt {train['prompt_tokens']} of "
        f"{train['context']} tokens (reference: image encoder every step + full context)"
    )
    print(f"{'':15}{'steps/s':>9}{'speedup':>9}{'GFLOP/step':>12}{'GFLOP/s':>9}{'|loss diff|':>13}")
    for name, row in train["paths"].items():
        print(
            f"{name:15}{row['steps_per_s']:9.2f}{row['speedup']:8.1f}x{row['gflop_per_step']:12.2f}"
            f"{row['gflops_achieved']:9.1f}{row['abs_loss_diff']:13.1e}"
        )
    print(f"matmul {train['matmul_gflops_measured']:.0f} GFLOP/s   peak RSS {train['peak_rss_mb']:.0f} MB")


def _write_gallery(folder: Path, n: int, size: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def bench_eval(model: str, n_gallery: int, n_queries: int, seed: int = 0) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip(ClipConfig(model=model, pretrained=None, init_seed=seed))
    torch.manual_seed(seed)
    mapper = Mapper(clip.embed_dim, clip.token_dim).eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_gallery(Path(tmp) / "gallery", n_gallery, clip.image_size, seed)
        prompts = ["a photo of * , is red and has a white logo"] * n_queries

        def evaluate() -> None:
            gallery = embed_images(clip, paths, cache_dir=Path(tmp) / "cache", desc="gallery").tensor(normalize=True)
            refs = embed_images(clip, paths[:n_queries], cache_dir=Path(tmp) / "cache", desc="queries").tensor()
            queries = compose_queries(clip, mapper, refs, prompts)["pic2word"]
            (queries @ gallery.T).topk(10, dim=1)

        t = time.perf_counter()
        evaluate()
        cold = time.perf_counter() - t
        warm = _median_time(evaluate, 0, 3)
        refs = torch.randn(n_queries, clip.embed_dim)
        compose = _median_time(lambda: compose_queries(clip, mapper, refs, prompts, methods=["pic2word"]), 1, 3)
    return {
        "model": model,
        "n_gallery": n_gallery,
        "n_queries": n_queries,
        "first_run_s": cold,
        "warm_cache_run_s": warm,
        "speedup": cold / warm,
        "composed_queries_per_s": n_queries / compose,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench_views(model: str, n_images: int, epochs: int, views: tuple[int, ...], seed: int = 0) -> dict:
    """What the augmentation costs: image-encoder passes per training image, and one measured pass.

    recompute re-encodes an augmented crop of every image in every epoch; cached-K embeds K augmented
    views once (cached-1: the plain image). Decoding, cropping and encoding dominate both, so the
    cost is passes x the measured seconds per pass; the training step itself is the same for every K
    (a row gather from the view's cache), measured here too."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip(ClipConfig(model=model, pretrained=None, init_seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_gallery(Path(tmp) / "images", n_images, clip.image_size, seed)
        t = time.perf_counter()
        embed_images(clip, paths, desc="plain pass")
        plain = time.perf_counter() - t
        t = time.perf_counter()
        embed_images(clip, paths, view=AugmentedView(0, (0.9, 1.0), seed), desc="augmented pass")
        augmented = time.perf_counter() - t
    per_image = {"plain": plain / n_images, "augmented": augmented / n_images}
    rows = {
        "recompute": {"passes": epochs, "seconds_per_image": epochs * per_image["augmented"]},
        "cached-1": {"passes": 1, "seconds_per_image": per_image["plain"]},
    }
    rows.update({f"cached-{k}": {"passes": k, "seconds_per_image": k * per_image["augmented"]} for k in views if k > 1})
    for row in rows.values():
        row["cost_vs_recompute"] = row["seconds_per_image"] / rows["recompute"]["seconds_per_image"]
    return {
        "model": model,
        "n_images": n_images,
        "epochs": epochs,
        "measured_s_per_image_pass": per_image,
        "rows": rows,
    }


def print_views(v: dict) -> None:
    print(
        f"\naugmentation, {v['model']}, {v['epochs']} epochs: image-encoder cost per training image "
        f"(one pass measured on {v['n_images']} images: {v['measured_s_per_image_pass']['augmented'] * 1e3:.0f} ms/image)"
    )
    print(f"{'':12}{'passes':>8}{'s/image':>10}{'vs recompute':>14}")
    for name, row in v["rows"].items():
        print(f"{name:12}{row['passes']:8d}{row['seconds_per_image']:10.3f}{row['cost_vs_recompute']:13.2f}x")


def bench_ann(n: int, dim: int, n_queries: int, nprobes: tuple[int, ...], seed: int = 0) -> dict:
    """Approximate (faiss IVF) against exact search on a synthetic clustered gallery of n embeddings."""

    n_clusters = max(1, n // 100)  # about 100 near-duplicates per subject
    t = time.perf_counter()
    gallery = clustered_embeddings(n, dim, n_clusters, spread=1.0, seed=seed)  # [N, D]
    queries = torch.from_numpy(clustered_embeddings(n_queries, dim, n_clusters, spread=1.0, seed=seed)[::-1].copy())
    make_s = time.perf_counter() - t
    g = torch.from_numpy(gallery)
    t = time.perf_counter()
    _, exact = topk_search(queries, g, k=10, chunk_size=256)
    exact_s = time.perf_counter() - t
    cfg = IvfConfig()
    t = time.perf_counter()
    index = build_ivf(gallery, cfg)
    build_s = time.perf_counter() - t
    index_bytes = n * (dim * 4 + 8) + cfg.cells(n) * dim * 4  # inverted lists (vectors + ids) + centroids
    rows = {"exact": {"queries_per_s": n_queries / exact_s, "recall_at_10": 1.0}}
    for nprobe in nprobes:
        t = time.perf_counter()
        _, idx = search_ivf(index, queries, 10, nprobe=nprobe)
        seconds = time.perf_counter() - t
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(idx.tolist(), exact.tolist())]))
        rows[f"ivf nprobe={nprobe}"] = {"queries_per_s": n_queries / seconds, "recall_at_10": recall}
    return {
        "n": n,
        "dim": dim,
        "n_queries": n_queries,
        "cells": cfg.cells(n),
        "build_s": build_s,
        "index_mb": index_bytes / 2**20,
        "gallery_mb": gallery.nbytes / 2**20,
        "synthesis_s": make_s,
        "rows": rows,
    }


def print_ann(a: dict) -> None:
    print(
        f"\nsearch, synthetic clustered gallery of {a['n']:,} x {a['dim']}-d embeddings, {a['n_queries']} queries, "
        f"top 10: IVF with {a['cells']} cells built in {a['build_s']:.1f} s, "
        f"{a['index_mb']:.0f} MB (gallery {a['gallery_mb']:.0f} MB)"
    )
    print(f"{'':18}{'queries/s':>11}{'recall@10':>11}")
    for name, row in a["rows"].items():
        print(f"{name:18}{row['queries_per_s']:11.0f}{row['recall_at_10']:11.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2w_lib.tools.bench", description=__doc__)
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model (random weights; nothing is downloaded)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gallery", type=int, default=512)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the augmentation cost table (the paper's 30)")
    parser.add_argument("--view-images", type=int, default=64, help="images of the measured augmentation pass")
    parser.add_argument(
        "--ann-size", type=int, default=1_000_000, help="synthetic gallery size of the search benchmark"
    )
    parser.add_argument("--ann-queries", type=int, default=1000, help="queries of the search benchmark")
    parser.add_argument("--out", default="results/bench")
    parser.add_argument(
        "--flops",
        metavar="MODEL",
        default=None,
        help="only count FLOPs per training sample for MODEL (e.g. ViT-L-14); see docs/cost.md",
    )
    args = parser.parse_args(argv)
    if args.flops:
        flops = flops_per_sample(args.flops)
        atomic_write_json(Path(args.out) / f"flops_{args.flops}.json", flops)
        print(", ".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in flops.items()))
        return 0

    train = bench_train_step(args.model, args.batch, args.warmup, args.repeats)
    atomic_write_json(Path(args.out) / "train_step.json", train)
    print_train(train)

    views = bench_views(args.model, args.view_images, args.epochs, (2, 4, 8))
    atomic_write_json(Path(args.out) / "augmentation.json", views)
    print_views(views)

    ann = bench_ann(args.ann_size, 512, args.ann_queries, (8, 32, 128))
    atomic_write_json(Path(args.out) / "search.json", ann)
    print_ann(ann)

    ev = bench_eval(args.model, args.gallery, args.queries)
    atomic_write_json(Path(args.out) / "eval.json", ev)
    print(
        f"\neval, {ev['n_gallery']} gallery images, {ev['n_queries']} queries: first run {ev['first_run_s']:.2f}s, "
        f"warm cache {ev['warm_cache_run_s']:.3f}s ({ev['speedup']:.0f}x); "
        f"{ev['composed_queries_per_s']:.0f} composed queries/s; peak RSS {ev['peak_rss_mb']:.0f} MB"
    )
    return 0


def flops_per_sample(model: str = "ViT-L-14", batch: int = 2) -> dict:
    """FLOPs per training sample (torch's FLOP counter) of each part of a Pic2Word step.

    image_forward: the frozen image encoder (paid every step by the original, once per image here);
    text_full / text_truncated: forward + backward of the text tower for `a photo of *` over the
    full 77-token context vs. the truncated one (the backward flows to the pseudo token).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip(ClipConfig(model=model, pretrained=None))
    images = torch.randn(batch, 3, clip.image_size, clip.image_size)
    feats = clip.encode_image(images)
    one = tokenize_prompts(clip.model, clip.tokenizer, ["a photo of *"])
    tokens = ComposedTokens(one.ids.expand(batch, -1), one.star_pos.expand(batch), one.pool_pos.expand(batch))
    mapper = Mapper(clip.embed_dim, clip.token_dim)

    encoders = text_encoders(clip)

    def text_step(name: str):
        return lambda: _loss(clip, mapper, tokens, feats, encoders[name]).backward()

    image = _flops(lambda: clip.encode_image(images)) / batch
    text_step("prefix")()  # the prefix's keys/values are computed once per training run, not per sample
    text = {name: _flops(text_step(name)) / batch / 1e9 for name in encoders}
    return {
        "model": model,
        "image_forward_gflop": image / 1e9,
        "text_full_context_gflop": text["full"],
        "text_truncated_gflop": text["truncated"],
        "text_prefix_cached_gflop": text["prefix"],
        "prompt_tokens": int(one.pool_pos.max()) + 1,
        "context": int(one.ids.shape[1]),
    }


if __name__ == "__main__":
    raise SystemExit(main())
