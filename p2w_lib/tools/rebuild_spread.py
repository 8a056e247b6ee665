"""How far a rebuild moved the demo's numbers, and whether every stated comparison held.

    python -m p2w_lib.tools.rebuild_spread results /path/to/rebuilt/results --label "ATEN_CPU_CAPABILITY=default"

Two results folders of the same code and settings (e.g. the committed one and a `make reproduce` on
a perturbed floating point or another machine) are read side by side: each method's R@10 per seed
on both demo benchmarks with the change, and each comparison with image + text with its verdict
(protocols/comparisons.py) in both. Prints markdown; docs/reproducibility.md is its output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p2w_lib.app.readme import load_all_seeds
from p2w_lib.app.report import METHOD_LABELS
from p2w_lib.protocols.comparisons import verdict

BENCHMARKS = {"domain_conversion": "domain conversion", "fashion_iq": "Fashion-IQ analogue"}


def _docs(results: Path) -> dict:
    docs = {b: load_all_seeds(results / "metrics" / f"{b}_all_seeds.json") for b in BENCHMARKS}
    for bench, doc in docs.items():
        if not all("comparisons" in run for run in doc["seeds"].values()):
            raise ValueError(f"{results}: {bench}'s results have no comparisons; re-run its stage (dvc repro) first")
    return docs


def numbers_table(a: dict, b: dict, key: str = "R@10") -> tuple[str, float]:
    """Each method's score per benchmark and seed in both runs, and the largest move."""
    lines = ["| benchmark | method | " + " | ".join(f"seed {s}: a -> b" for s in a["fashion_iq"]["seeds"]) + " |"]
    lines.append("|---|---|" + "---|" * len(a["fashion_iq"]["seeds"]))
    largest = 0.0
    for bench, label in BENCHMARKS.items():
        seeds_a, seeds_b = a[bench]["seeds"], b[bench]["seeds"]
        for method in next(iter(seeds_a.values()))["methods"]:
            cells = []
            for s in seeds_a:
                x, y = seeds_a[s]["methods"][method][key], seeds_b[s]["methods"][method][key]
                largest = max(largest, abs(y - x))
                cells.append(f"{x:.2f} -> {y:.2f} ({y - x:+.2f})")
            lines.append(f"| {label} | {METHOD_LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines), largest


def verdict_table(a: dict, b: dict, key: str = "R@10") -> tuple[str, list[str]]:
    """Each comparison with image + text: its verdict in both runs; returns the ones that changed."""
    lines = ["| benchmark | method minus image + text | verdict a | verdict b |", "|---|---|---|---|"]
    changed = []
    for bench, label in BENCHMARKS.items():
        runs_a, runs_b = list(a[bench]["seeds"].values()), list(b[bench]["seeds"].values())
        for method in runs_a[0]["comparisons"][key]:
            va = verdict([r["comparisons"][key][method] for r in runs_a])
            vb = verdict([r["comparisons"][key][method] for r in runs_b])
            name = METHOD_LABELS.get(method, method)
            lines.append(f"| {label} | {name} | {va} | {vb}{'' if va == vb else ' (changed)'} |")
            if va != vb:
                changed.append(f"{label}: {name} {va} -> {vb}")
    return "\n".join(lines), changed


def report(a_dir: Path, b_dir: Path, label: str) -> str:
    a, b = _docs(a_dir), _docs(b_dir)
    numbers, largest = numbers_table(a, b)
    verdicts, changed = verdict_table(a, b)
    held = "every verdict held" if not changed else "verdicts that changed: " + "; ".join(changed)
    return "\n".join(
        [
            f"a: `{a_dir}`; b: `{b_dir}` ({label}). Largest move of an R@10: {largest:.2f} points; {held}.",
            "",
            numbers,
            "",
            verdicts,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m p2w_lib.tools.rebuild_spread", description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="a results folder (e.g. results)")
    ap.add_argument("b", type=Path, help="the rebuilt results folder")
    ap.add_argument("--label", default="rebuild", help="what b's run changed, for the heading")
    args = ap.parse_args(argv)
    try:
        print(report(args.a, args.b, args.label))
    except (OSError, ValueError) as err:
        print(f"rebuild_spread: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
