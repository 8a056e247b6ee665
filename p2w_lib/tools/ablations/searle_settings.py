"""Measure one setting of SEARLE on the demo: invert and distil on a random image subset other than
the pipeline's, with a built seed's demo CLIP, then print SEARLE's R@10 on both demo benchmarks beside
Pic2Word's and image + text's, and the time it took. docs/extending.md lists the rows measured.

    python -m p2w_lib.tools.ablations.searle_settings --images 512 --oti-steps 50 --ema-decay 0.93 --steps 300 --lr 1e-4 --seed 0

Needs the pipeline's world, demo CLIP and Pic2Word mapper of that seed (`make reproduce`); writes
only under runs/searle_ablation/, where a stopped run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from p2w_lib.app.benchmarks import BENCHMARKS, EvalContext
from p2w_lib.app.models import clip_for, mapper_for
from p2w_lib.app.profile import load_profile
from p2w_lib.app.training_data import searle_images, searle_phrases
from p2w_lib.clip.features import embed_images
from p2w_lib.methods.searle.train import train_searle

BENCHMARKS_MEASURED = ("domain_conversion", "fashion_iq")
SHOWN = ("searle", "pic2word", "image_text")


def run(args: argparse.Namespace) -> dict:
    p = load_profile(args.params, args.profile)
    cfg = replace(
        p.searle,
        seed=args.seed,
        oti_images=args.images,
        oti_steps=args.oti_steps,
        ema_decay=args.ema_decay,
        steps=args.steps,
        lr=args.lr,
    )
    p = p.with_sections(searle=cfg)
    name = f"seed{args.seed}-n{args.images}-oti{args.oti_steps}-ema{args.ema_decay}-phi{args.steps}-lr{args.lr}"
    clip = clip_for(p, args.seed)
    start = time.perf_counter()
    emb = embed_images(
        clip, searle_images(p, args.subset_seed), cache_dir=p.cache_dir, desc="embedding the ablation's images"
    )
    valid = emb.valid.nonzero()[0]
    result = train_searle(
        clip,
        emb.tensor()[valid],
        [emb.paths[i] for i in valid],
        searle_phrases(p, clip),
        cfg,
        Path("runs/searle_ablation") / name,
        restart_on_change=True,
    )
    seconds = time.perf_counter() - start
    networks = {"pic2word": mapper_for(p, args.seed, clip), "searle": result.phi}
    row = {"setting": name, "seconds": round(seconds)}
    for bench in BENCHMARKS_MEASURED:
        methods = BENCHMARKS[bench].evaluate(EvalContext(profile=p, seed=args.seed, clip=clip, mapper=networks))[
            "methods"
        ]
        row.update({f"{bench} R@10 {m}": round(methods[m]["R@10"], 2) for m in SHOWN})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m p2w_lib.tools.ablations.searle_settings", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    ap.add_argument("--profile", default=None, help="a demo-kind profile that was run (default: the file's `profile`)")
    ap.add_argument("--images", type=int, default=512, help="images inverted and distilled (default: 512)")
    ap.add_argument("--oti-steps", type=int, default=50, help="OTI steps per image batch (default: 50)")
    ap.add_argument("--ema-decay", type=float, default=0.93, help="decay of OTI's token average (default: 0.93)")
    ap.add_argument("--steps", type=int, default=100, help="phi's optimisation steps (default: 100)")
    ap.add_argument("--lr", type=float, default=1e-4, help="phi's learning rate (default: 1e-4)")
    ap.add_argument("--seed", type=int, default=0, help="the pipeline seed whose CLIP and mapper are used (default: 0)")
    ap.add_argument(
        "--subset-seed", type=int, default=1, help="seed of the image draw; the pipeline's is 0 (default: 1)"
    )
    args = ap.parse_args(argv)
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
