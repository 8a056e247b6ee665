"""Benchmarks, measured side by side in one process: `python -m p2w_lib.bench`.

train: the original recipe's step (image encoder forward under no_grad every step, text
    transformer over the full 77-token context) against ours (cached image embeddings, context
    truncated to the prompt), on the same model, batch and mapper weights.
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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from .clip_backbone import load_clip
from .composed import ComposedTokens, encode_composed_tokens, tokenize_prompts
from .config import ClipConfig
from .features import embed_images
from .io_utils import atomic_write_json
from .loss import contrastive_loss
from .mapper import Mapper
from .queries import compose_queries


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
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _loss(clip, mapper, tokens: ComposedTokens, feats: torch.Tensor, truncate: bool) -> torch.Tensor:
    text = encode_composed_tokens(clip.model, tokens, mapper(feats), truncate=truncate)  # [B, D]
    return contrastive_loss(F.normalize(feats, dim=-1), text, clip.logit_scale)


def bench_train_step(model: str, batch: int, warmup: int, repeats: int, seed: int = 0) -> dict:
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

    def make_step(feature_fn, truncate: bool):
        mapper = copy.deepcopy(base).train()
        opt = torch.optim.AdamW(mapper.parameters(), lr=1e-4)

        def step():
            loss = _loss(clip, mapper, tokens, feature_fn(), truncate)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    reference = make_step(lambda: clip.encode_image(images), truncate=False)
    ours = make_step(lambda: cached, truncate=True)
    # Loss equality on identical batches and mapper weights (dropout off so both see one function).
    probe = copy.deepcopy(base).eval()
    with torch.no_grad():
        diff = abs(_loss(clip, probe, tokens, clip.encode_image(images), False).item()
                   - _loss(clip, probe, tokens, cached, True).item())
    t_ref = _median_time(reference, warmup, repeats)
    t_ours = _median_time(ours, warmup, repeats)
    f_ref, f_ours = _flops(reference), _flops(ours)
    peak = matmul_gflops()
    return {
        "model": model, "batch": batch, "prompt_tokens": int(one.pool_pos.max()) + 1, "context": int(one.ids.shape[1]),
        "reference_steps_per_s": 1 / t_ref, "ours_steps_per_s": 1 / t_ours, "speedup": t_ref / t_ours,
        "max_abs_loss_diff": diff,
        "reference_gflop_per_step": f_ref / 1e9, "ours_gflop_per_step": f_ours / 1e9,
        "reference_gflops_achieved": f_ref / t_ref / 1e9, "ours_gflops_achieved": f_ours / t_ours / 1e9,
        "matmul_gflops_measured": peak, "warmup": warmup, "repeats": repeats,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


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
    return {"model": model, "n_gallery": n_gallery, "n_queries": n_queries, "first_run_s": cold, "warm_cache_run_s": warm,
            "speedup": cold / warm, "composed_queries_per_s": n_queries / compose,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2w_lib.bench", description=__doc__)
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model (random weights; nothing is downloaded)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gallery", type=int, default=512)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--out", default="results/bench")
    parser.add_argument("--flops", metavar="MODEL", default=None,
                        help="only count FLOPs per training sample for MODEL (e.g. ViT-L-14); see docs/cost.md")
    args = parser.parse_args(argv)
    if args.flops:
        flops = flops_per_sample(args.flops)
        atomic_write_json(Path(args.out) / f"flops_{args.flops}.json", flops)
        print(", ".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in flops.items()))
        return 0

    train = bench_train_step(args.model, args.batch, args.warmup, args.repeats)
    atomic_write_json(Path(args.out) / "train_step.json", train)
    print(f"train step, {train['model']}, batch {train['batch']}, prompt {train['prompt_tokens']} of {train['context']} tokens")
    print(f"{'':12}{'steps/s':>10}{'GFLOP/step':>12}{'GFLOP/s':>10}")
    for name in ("reference", "ours"):
        print(f"{name:12}{train[f'{name}_steps_per_s']:10.2f}{train[f'{name}_gflop_per_step']:12.2f}{train[f'{name}_gflops_achieved']:10.1f}")
    print(f"speedup {train['speedup']:.1f}x   max |loss diff| {train['max_abs_loss_diff']:.2e}   "
          f"matmul {train['matmul_gflops_measured']:.0f} GFLOP/s   peak RSS {train['peak_rss_mb']:.0f} MB")

    ev = bench_eval(args.model, args.gallery, args.queries)
    atomic_write_json(Path(args.out) / "eval.json", ev)
    print(f"\neval, {ev['n_gallery']} gallery images, {ev['n_queries']} queries: first run {ev['first_run_s']:.2f}s, "
          f"warm cache {ev['warm_cache_run_s']:.3f}s ({ev['speedup']:.0f}x); "
          f"{ev['composed_queries_per_s']:.0f} composed queries/s; peak RSS {ev['peak_rss_mb']:.0f} MB")
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

    def text_step(truncate: bool):
        return lambda: _loss(clip, mapper, tokens, feats, truncate).backward()

    image = _flops(lambda: clip.encode_image(images)) / batch
    full, short = _flops(text_step(False)) / batch, _flops(text_step(True)) / batch
    return {"model": model, "image_forward_gflop": image / 1e9, "text_full_context_gflop": full / 1e9,
            "text_truncated_gflop": short / 1e9, "prompt_tokens": int(one.pool_pos.max()) + 1, "context": int(one.ids.shape[1])}


if __name__ == "__main__":
    raise SystemExit(main())
