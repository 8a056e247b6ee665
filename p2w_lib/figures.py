"""Figures that notebooks show and `results/figures/` keeps: readable at a glance."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless under papermill; JupyterLab's inline backend still displays figures
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from .images import load_rgb  # noqa: E402
from .io_utils import atomic_path  # noqa: E402
from .report import METHOD_LABELS  # noqa: E402

COLOURS = {"image_only": "#9e9e9e", "text_only": "#bdbdbd", "image_text": "#64b5f6", "pic2word": "#e53935", "oracle_text": "#4caf50"}


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as PNG atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


def image_grid(rows: Sequence[Sequence[str]], row_labels: Sequence[str], title: str = "", cell: float = 0.9) -> Figure:
    """A grid of image files, one labelled row per sequence."""
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(cell * n_cols + 1.2, cell * len(rows) + 0.4), squeeze=False)
    for r, (paths, label) in enumerate(zip(rows, row_labels)):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(paths):
                ax.imshow(load_rgb(paths[c]))
        axes[r][0].text(-0.1, 0.5, label, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    return fig


def loss_curves(logs: dict[str, str | Path], y: str = "loss", title: str = "training loss") -> Figure:
    """Loss against step from training-log CSVs (one line per label)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for label, path in logs.items():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        ax.plot([int(r["step"]) for r in rows], [float(r[y]) for r in rows], label=label, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def placeholder(text: str) -> Figure:
    """A figure that only says why there is nothing to show (a DVC output must still exist)."""
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def grouped_bars(result: dict, metric: str = "R@10", title: str = "") -> Figure:
    """Bars of `metric` per domain/category (and the average) for every method of a results file."""
    if "skipped" in result:  # a switched-off paper benchmark: the stage's figure says why it is empty
        return placeholder(f"{title or 'benchmark'}: skipped ({result['skipped']})")
    group_key = "per_domain" if "per_domain" in result["methods"]["pic2word"] else "per_category"
    methods = list(result["methods"])
    groups = list(result["methods"]["pic2word"][group_key]) + ["average"]
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 2, 3.6))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        scores = result["methods"][method]
        values = [scores[group_key][g][metric] for g in groups[:-1]] + [scores[metric]]
        xs = [g + (i - (len(methods) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=METHOD_LABELS.get(method, method), color=COLOURS.get(method))
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(title or f"{metric} ({result['metric'].replace('_', ' ')}, profile {result['profile']}, seed {result['seed']})")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return fig


def retrieval_grid(examples: list[dict], methods: Sequence[str] = ("pic2word", "image_text"), k: int = 5) -> Figure:
    """Per example: the query image and text, then the top-k of each method; hits outlined in green.

    Each example: {"query": path, "text": str, "results": {method: [(path, is_correct), ...]}}.
    """
    if not examples:
        return placeholder("no examples: the benchmark is switched off (paper_data.benchmarks)")
    n_rows = len(examples) * len(methods)
    fig, axes = plt.subplots(n_rows, k + 1, figsize=(1.25 * (k + 1) + 2.2, 1.3 * n_rows), squeeze=False)
    for e, example in enumerate(examples):
        for m, method in enumerate(methods):
            row = axes[e * len(methods) + m]
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_visible(False)
            if m == 0:
                row[0].imshow(load_rgb(example["query"]))
                row[0].set_title(_wrap(example["text"]), fontsize=7)
            row[0].set_ylabel(METHOD_LABELS.get(method, method), fontsize=8)
            for c, (path, correct) in enumerate(example["results"][method][:k], start=1):
                row[c].imshow(load_rgb(path))
                if correct:
                    row[c].add_patch(Rectangle((0, 0), 1, 1, transform=row[c].transAxes, fill=False, ec="#2e7d32", lw=4))
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 28) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


def world_samples(world_dir: str | Path) -> Figure:
    """One row per domain (each class once), then two rows of garments, from the evaluation images."""
    import json

    world_dir = Path(world_dir)
    attributes = json.loads((world_dir / "imgnet" / "attributes.json").read_text())
    meta = json.loads((world_dir / "world.json").read_text())
    rows, labels = [], []
    for domain in meta["domains"]:
        first = {}
        for path, a in attributes.items():
            if a["domain"] == domain and a["cls"] not in first:
                first[a["cls"]] = str(world_dir / path)
        rows.append([first[c] for c in meta["classes"] if c in first])
        labels.append(domain)
    garments = sorted((world_dir / "fashion-iq" / "images").glob("*V*.png"))
    n = len(rows[0])
    for r in range(2):
        rows.append([str(g) for g in garments[r * 37::3][:n]])
        labels.append("garments")
    return image_grid(rows, labels, title="The demo world: 16 classes x 5 domains, and Fashion-IQ-style garments")


def search_grid(image: str | Path, text: str, hits: list[tuple[str, float]]) -> Figure:
    """The query image and text, then the ranked results with their scores."""
    fig, axes = plt.subplots(1, len(hits) + 1, figsize=(1.6 * (len(hits) + 1), 2.2))
    axes[0].imshow(load_rgb(image))
    axes[0].set_title(_wrap(f"query + '{text}'", 20), fontsize=7)
    for ax, (path, score) in zip(axes[1:], hits):
        ax.imshow(load_rgb(path))
        ax.set_title(f"{score:.3f}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    return fig
