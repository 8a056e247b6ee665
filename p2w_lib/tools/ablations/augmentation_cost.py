"""What the paper's augmentation costs and buys, measured on the demo: train the mapper with image
embeddings re-encoded every step (RandomResizedCrop, as the original), cached once without
augmentation (cached-1), and cached as K augmented views (cached-K); evaluate both demo benchmarks.

    python -m p2w_lib.tools.ablations.augmentation_cost --seeds 0 1 --views 2 4 8

Needs a built demo (`make reproduce`: the world and the trained demo CLIPs). Each run trains into
runs/cost_ablation/ with an embedding cache of its own, so the timings include embedding. Writes
results/bench/augmentation_ablation.json and prints the table of docs/cost.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

from p2w_lib.app import models, profile, training_data
from p2w_lib.core.files import atomic_write_json
from p2w_lib.methods.pic2word.train import train_mapper
from p2w_lib.protocols.domain_conversion import evaluate_domain_conversion
from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq


def variants(views: list[int]) -> dict[str, dict]:
    """Name -> TrainConfig overrides."""
    out = {"cached-1": {"recompute_image_features": False, "augment_views": 1}}
    out.update({f"cached-{k}": {"recompute_image_features": False, "augment_views": k} for k in views})
    out["recompute"] = {"recompute_image_features": True, "augment_views": 1}
    return out


def image_encodes_per_image(overrides: dict, epochs: int) -> int:
    """Image-encoder passes each training image costs: one per epoch when re-encoded, else one per view."""
    return epochs if overrides["recompute_image_features"] else overrides["augment_views"]


def run_variant(p: profile.Profile, seed: int, name: str, overrides: dict, work: Path) -> dict:
    clip = models.clip_for(p, seed)
    cfg = replace(p.train, seed=seed, **overrides)
    out, cache = work / name / f"seed{seed}", work / "cache" / name / f"seed{seed}"
    for folder in (out, cache):  # a fresh run and a cold cache: the time includes embedding
        shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    mapper = train_mapper(clip, training_data.training_images(p), cfg, p.mapper, out, cache_dir=cache).mapper
    seconds = time.perf_counter() - start
    dc = evaluate_domain_conversion(
        clip,
        mapper,
        p.world_dir,
        p.source.rendition_domains,
        ks=p.eval.ks,
        cache_dir=p.cache_dir,
        profile=p.name,
        seed=seed,
    )
    fiq = evaluate_fashion_iq(
        clip, mapper, p.world_dir / "fashion-iq", ks=p.eval.ks, cache_dir=p.cache_dir, profile=p.name, seed=seed
    )
    return {
        "variant": name,
        "seed": seed,
        "train_s": round(seconds, 1),
        "image_encodes_per_image": image_encodes_per_image(overrides, cfg.epochs),
        "domain_conversion_R@10": dc["methods"]["pic2word"]["R@10"],
        "fashion_iq_R@10": fiq["methods"]["pic2word"]["R@10"],
    }


def table(rows: list[dict]) -> str:
    """Markdown: per variant, the mean over seeds and each seed's value."""
    lines = [
        "| variant | image encodes per image | training time (s) | domain conversion R@10 | Fashion-IQ R@10 |",
        "|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == name]

        def cell(key: str, digits: int, runs: list = runs) -> str:
            values = [r[key] for r in runs]
            each = " / ".join(f"{v:.{digits}f}" for v in values)
            return f"{statistics.mean(values):.{digits}f} ({each})" if len(values) > 1 else each

        lines.append(
            f"| {name} | {runs[0]['image_encodes_per_image']} | {cell('train_s', 0)} | "
            f"{cell('domain_conversion_R@10', 2)} | {cell('fashion_iq_R@10', 2)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m p2w_lib.tools.ablations.augmentation_cost", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    ap.add_argument("--profile", default="demo", help="a demo-kind profile with a built world and trained CLIPs")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the profile's)")
    ap.add_argument("--views", type=int, nargs="+", default=[2, 4, 8], help="K values of cached-K (default: 2 4 8)")
    ap.add_argument(
        "--work", default="runs/cost_ablation", help="where the variants train (default: runs/cost_ablation)"
    )
    ap.add_argument("--out", default="results/bench/augmentation_ablation.json", help="results file")
    args = ap.parse_args(argv)
    profile.enter_repo_root()
    p = profile.load_profile(args.params, args.profile)
    seeds = args.seeds or list(p.seeds)
    for seed in seeds:
        models.require_trained(p, seed)
    rows = []
    for name, overrides in variants(args.views).items():
        for seed in seeds:
            rows.append(run_variant(p, seed, name, overrides, Path(args.work)))
            print(rows[-1], flush=True)
    atomic_write_json(
        Path(args.out),
        {
            "profile": p.name,
            "epochs": p.train.epochs,
            "seeds": seeds,
            "n_images": len(training_data.training_images(p)),
            "rows": rows,
        },
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
