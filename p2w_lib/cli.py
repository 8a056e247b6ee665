"""Command line: `python -m p2w_lib <command>`."""
from __future__ import annotations

import argparse
import json
import logging
import sys


def _smoke(args: argparse.Namespace) -> int:
    from .smoke import run_smoke

    out = run_smoke(seed=args.seed)
    print(f"smoke run: {out['train_steps']} mapper steps, last loss {out['last_loss']:.4f}")
    print("true recall@10 (tiny random CLIP, colour-class relevance; near chance by design):")
    for method, m in out["methods"].items():
        print(f"  {method:<11} {m['R@10']:6.2f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m p2w_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    smoke = sub.add_parser("smoke", help="one-minute end-to-end run on a tiny random CLIP")
    smoke.add_argument("--seed", type=int, default=0)
    smoke.set_defaults(func=_smoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
