"""Sweep Slerp's alpha on the demo benchmarks: R@10 of Slerp at each alpha, with a built seed's demo
CLIP, beside image only (alpha 0), text only (alpha 1) and image + text, which is Slerp at alpha 0.5
(the normalised sum of two unit vectors is their spherical midpoint). docs/extending.md has the table.

    python -m p2w_lib.tools.ablations.slerp_alpha --seed 0 --alphas 0.3 0.5 0.6 0.7 0.8 0.9

Needs the pipeline's world and demo CLIP of that seed (`make reproduce`); trains nothing and writes
nothing. The alpha is set by patching the paper's table (slerp.PAPER_ALPHA) for the run: an
ablation's lever, not a setting of the pipeline.
"""

from __future__ import annotations

import argparse
import json
from unittest import mock

from p2w_lib.app.benchmarks import BENCHMARKS, EvalContext
from p2w_lib.app.models import clip_for
from p2w_lib.app.profile import load_profile
from p2w_lib.methods import slerp

BENCHMARKS_MEASURED = ("domain_conversion", "fashion_iq")


def run(args: argparse.Namespace) -> list[dict]:
    p = load_profile(args.params, args.profile)
    clip = clip_for(p, args.seed)
    rows = []
    for alpha in args.alphas:
        row = {"alpha": alpha}
        for bench in BENCHMARKS_MEASURED:
            with mock.patch.dict(slerp.PAPER_ALPHA, {bench: alpha}):
                # No networks: the protocols score the training-free methods only.
                methods = BENCHMARKS[bench].evaluate(EvalContext(profile=p, seed=args.seed, clip=clip, mapper=None))[
                    "methods"
                ]
            row.update(
                {
                    f"{bench} R@10 {m}": round(methods[m]["R@10"], 2)
                    for m in ("slerp", "image_text", "image_only", "text_only")
                }
            )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m p2w_lib.tools.ablations.slerp_alpha", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    ap.add_argument("--profile", default=None, help="a demo-kind profile that was run (default: the file's `profile`)")
    ap.add_argument("--seed", type=int, default=0, help="the pipeline seed whose demo CLIP is used (default: 0)")
    ap.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=[0.3, 0.5, 0.6, 0.7, 0.8, 0.9],
        help="Slerp weights on the text to measure (default: 0.3 0.5 0.6 0.7 0.8 0.9)",
    )
    args = ap.parse_args(argv)
    for row in run(args):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
