"""Figures that notebooks show inline and `results/figures/` keeps: readable at a glance.

No backend is forced here: in JupyterLab (and under papermill) the inline backend shows each figure
in its cell and embeds it in the executed notebook; without a display matplotlib falls back to Agg.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from p2w_lib.app.report import METHOD_LABELS
from p2w_lib.core.files import atomic_path
from p2w_lib.data.images import load_rgb
from p2w_lib.methods.registry import QUERY_METHODS
from p2w_lib.protocols.results_schema import group_key
from p2w_lib.protocols.results_schema import groups as group_names

COLOURS = {**{name: m.colour for name, m in QUERY_METHODS.items()}, "oracle_text": "#4caf50"}


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


def loss_curves(
    logs: dict[str, str | Path], y: str = "loss", title: str = "training loss", steps_per_epoch: int | None = None
) -> Figure:
    """Loss against step from training-log CSVs, one line per label (seeds overlaid), on a log scale;
    dotted verticals mark epoch ends when `steps_per_epoch` is given."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    last = 0
    for label, path in logs.items():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        steps = [int(r["step"]) for r in rows]
        ax.plot(steps, [float(r[y]) for r in rows], label=label, lw=1.1, alpha=0.9)
        last = max(last, steps[-1] if steps else 0)
    if steps_per_epoch:
        for epoch_end in range(steps_per_epoch, last + 1, steps_per_epoch):
            ax.axvline(epoch_end, color="#757575", ls=":", lw=0.8)
        ax.plot([], [], color="#757575", ls=":", lw=0.8, label="epoch end")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{y} (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def placeholder(text: str) -> Figure:
    """A figure that only says why there is nothing to show (a DVC output must still exist)."""
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def grouped_bars(results: dict | dict[int, dict], metric: str = "R@10", title: str = "", note: str = "") -> Figure:
    """Bars of `metric` per domain/category (and the average) for every method: the mean over seeds,
    each seed's value as a dot, and the achievable ceiling (a query with 30 relevant images scores at
    most 10/30 at K=10) as a dashed line when the results carry one.

    results: one results file, or {seed: results file} of the same benchmark.
    """
    by_seed = results if "methods" not in results and "skipped" not in results else {results.get("seed", 0): results}
    first = next(iter(by_seed.values()))
    if "skipped" in first:  # a switched-off paper benchmark: the stage's figure says why it is empty
        return placeholder(f"{title or 'benchmark'}: skipped ({first['skipped']})")
    by = group_key(first)
    if by is None:
        raise ValueError(
            f"grouped_bars draws a benchmark with groups (domains, categories); the {first['metric']} "
            "results given have none: use metrics_frame for them"
        )
    groups = [*group_names(first), "average"]

    def values(method: str) -> list[list[float]]:  # [S, G]
        return [
            [r["methods"][method][by][g][metric] for g in groups[:-1]] + [r["methods"][method][metric]]
            for r in by_seed.values()
        ]

    fig, ax = plt.subplots(figsize=(1.45 * len(groups) + 2, 4.2))
    _method_bars(ax, list(first["methods"]), groups, values)
    _ceiling_marks(ax, first, groups, metric)
    title = title or f"{metric} ({first['metric'].replace('_', ' ')}, profile {first['profile']})"
    _finish(ax, f"{metric} (%)", list(by_seed), title, note)
    return fig


def metric_bars(results: dict | dict[int, dict], metrics: Sequence[str], title: str = "", note: str = "") -> Figure:
    """Bars of several metrics of one benchmark without groups (CIRR's Recall@K and Recall_subset@K)
    for every method: the mean over seeds, each seed's value as a dot."""
    by_seed = results if "methods" not in results else {results.get("seed", 0): results}
    first = next(iter(by_seed.values()))
    # A toy gallery smaller than K has no score at K (the tiny profile's): those metrics are left out.
    metrics = [m for m in metrics if all(m in s for r in by_seed.values() for s in r["methods"].values())]
    fig, ax = plt.subplots(figsize=(1.45 * len(metrics) + 2, 4.2))
    _method_bars(
        ax,
        list(first["methods"]),
        list(metrics),
        lambda method: [[r["methods"][method][m] for m in metrics] for r in by_seed.values()],
    )
    _finish(ax, "recall (%)", list(by_seed), title, note)
    return fig


def _method_bars(ax, methods: list[str], groups: list[str], values) -> None:
    """One bar per method in each group: the mean over seeds of values(method) [S, G], a dot per seed.
    Supervised methods' bars are hatched: they are not zero-shot."""
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        per_seed = values(method)  # [S, G]
        means = [statistics.fmean(col) for col in zip(*per_seed)]
        xs = [g + (i - (len(methods) - 1) / 2) * width for g in range(len(groups))]
        supervised = method in QUERY_METHODS and QUERY_METHODS[method].supervised
        ax.bar(
            xs,
            means,
            width,
            label=METHOD_LABELS.get(method, method) + (" [supervised]" if supervised else ""),
            color=COLOURS.get(method),
            hatch="///" if supervised else None,
            edgecolor="white" if supervised else None,
        )
        if len(per_seed) > 1:
            for seed_values in per_seed:
                ax.scatter(xs, seed_values, s=9, color="black", zorder=3, linewidths=0)
    ax.set_xticks(range(len(groups)), groups)


def _finish(ax, ylabel: str, seeds: list, title: str, note: str) -> None:
    """Axis label naming the seeds, the title with an optional note line, the legend below the axes."""
    names = ", ".join(str(s) for s in seeds)
    ax.set_ylabel(
        f"{ylabel}\nbars: mean of seeds {names}" + ("; dots: each seed" if len(seeds) > 1 else ""), fontsize=9
    )
    ax.set_title(title, pad=16 if note else 6)
    if note:  # one line between the title and the axes
        ax.text(0.5, 1.01, note, transform=ax.transAxes, ha="center", va="bottom", fontsize=7.5, color="#b71c1c")
    handles, labels = ax.get_legend_handles_labels()
    # Below the axes, so no legend ever covers a bar.
    ax.legend(
        handles,
        labels,
        fontsize=8,
        ncol=min(len(handles), 6),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        frameon=False,
    )
    ax.grid(axis="y", alpha=0.3)


def _ceiling_marks(ax, result: dict, groups: list[str], metric: str) -> None:
    ceiling = result.get("ceiling")
    if not ceiling:
        return
    values = [ceiling[g][metric] for g in groups[:-1]] + [statistics.fmean(ceiling[g][metric] for g in groups[:-1])]
    for g, value in enumerate(values):
        ax.hlines(value, g - 0.45, g + 0.45, colors="#424242", linestyles="--", lw=1)
    ax.add_line(Line2D([], [], color="#424242", ls="--", lw=1, label="achievable ceiling"))


HIT_COLOUR = "#2e7d32"


def retrieval_grid(
    examples: list[dict], methods: Sequence[str] = ("pic2word", "image_text"), k: int = 5, title: str = ""
) -> Figure:
    """Per example and method: the query image with its text, the ground-truth target when the
    example has one, then the top-k (rank headers on top); correct retrievals outlined in green.

    Each example: {"query": path, "text": str, "target": path (optional), "results": {method: [(path, is_correct), ...]}}.
    """
    if not examples:
        return placeholder("no examples: the benchmark is switched off (paper_data.benchmarks)")
    has_target = any(e.get("target") for e in examples)
    lead = 2 if has_target else 1
    n_rows = len(examples) * len(methods)
    fig, axes = plt.subplots(n_rows, k + lead, figsize=(1.3 * (k + lead) + 1.6, 1.45 * n_rows + 0.9), squeeze=False)
    for e, example in enumerate(examples):
        for m, method in enumerate(methods):
            row = axes[e * len(methods) + m]
            for ax in row:
                _bare(ax)
            if m == 0:
                row[0].imshow(load_rgb(example["query"]))
                row[0].set_xlabel(_wrap(example["text"], 22), fontsize=6.5)
                if example.get("target"):
                    row[1].imshow(load_rgb(example["target"]))
                    _outline(row[1], HIT_COLOUR, ls="--")
            row[lead].set_ylabel(METHOD_LABELS.get(method, method), fontsize=8, rotation=0, ha="right", va="center")
            for c, (path, correct) in enumerate(example["results"][method][:k], start=lead):
                row[c].imshow(load_rgb(path))
                if correct:
                    _outline(row[c], HIT_COLOUR)
    headers = ["query + text"] + (["target"] if has_target else []) + [f"rank {r}" for r in range(1, k + 1)]
    for ax, header in zip(axes[0], headers):
        ax.set_title(header, fontsize=8)
    legend = [Patch(fill=False, ec=HIT_COLOUR, lw=2.5, label="correct retrieval (green outline)")]
    if has_target:
        legend.append(Patch(fill=False, ec=HIT_COLOUR, lw=1.5, ls="--", label="ground-truth target"))
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _outline(ax, colour: str, ls: str = "-") -> None:
    ax.add_patch(
        Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec=colour, lw=4 if ls == "-" else 2, ls=ls)
    )


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
    images = world_dir / "fashion-iq" / "images"
    n = len(rows[0])
    per_category = [sorted(images.glob(f"{c}V*.png"))[:n] for c in ("D", "S", "T")]  # dress, shirt, toptee
    mixed = [str(g) for trio in zip(*per_category) for g in trio]
    for r in range(2):
        rows.append(mixed[r * n : (r + 1) * n])
        labels.append("garments")
    return image_grid(rows, labels, title="The demo world: 16 classes x 5 domains, and Fashion-IQ-style garments")


def search_grid(
    image: str | Path, text: str, hits: list[tuple[str, float]], method: str = "pic2word", title: str = ""
) -> Figure:
    """The query image and text, then the ranked results with their cosine scores."""
    return compare_grid(image, text, {method: hits}, title=title)


GRID_COLUMNS = 5  # results per row: at k = 10 a row of 11 thumbnails shrinks below readable in a notebook


def compare_grid(image: str | Path, text: str, hits: dict[str, list[tuple[str, float]]], title: str = "") -> Figure:
    """The query image and text, then each method's ranked results (with cosine scores), in rows of at
    most GRID_COLUMNS: k = 10 is two rows per method."""
    k = max((len(h) for h in hits.values()), default=0)
    cols = min(k, GRID_COLUMNS)
    per_method = -(-k // cols) if cols else 1  # rows each method's results take
    n_rows = len(hits) * per_method
    fig, axes = plt.subplots(n_rows, cols + 1, figsize=(1.5 * (cols + 1) + 1.2, 1.9 * n_rows + 0.5), squeeze=False)
    for ax in axes.flat:
        _bare(ax)
    for m, (method, ranked) in enumerate(hits.items()):
        rows = axes[m * per_method : (m + 1) * per_method]
        rows[0][1].set_ylabel(METHOD_LABELS.get(method, method), fontsize=8, rotation=0, ha="right", va="center")
        for rank, (path, score) in enumerate(ranked, start=1):
            ax = rows[(rank - 1) // cols][1 + (rank - 1) % cols]
            ax.imshow(load_rgb(path))
            ax.set_title(f"rank {rank}", fontsize=8)
            ax.set_xlabel(f"cos {score:.3f}", fontsize=7)
    axes[0][0].imshow(load_rgb(image))
    axes[0][0].set_title("query", fontsize=8)
    axes[0][0].set_xlabel(_wrap(text, 20), fontsize=7)
    if title or len(hits) == 1:
        fig.suptitle(title or f"{METHOD_LABELS.get(next(iter(hits)), next(iter(hits)))}: top {k}", fontsize=9)
    fig.tight_layout()
    return fig
