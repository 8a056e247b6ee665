"""Tables and figures from results files: what notebooks show and the README embeds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from p2w_lib.methods.registry import QUERY_METHODS
from p2w_lib.protocols.published import SPLITS, published_for
from p2w_lib.protocols.results_schema import (
    AllSeeds,
    Document,
    check_document,
    group_key,
    groups,
    is_skipped,
)

# The oracle is not a query method: demo protocols add it as a text that names the answer.
METHOD_LABELS = {**{name: m.label for name, m in QUERY_METHODS.items()}, "oracle_text": "oracle text"}


def load_json(path: str | Path):
    """A results file's JSON, or a FileNotFoundError saying which stage writes it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: results file missing; run the evaluation stage first (dvc repro)")
    return json.loads(path.read_text())


def load_result(path: str | Path) -> Document:
    return check_document(load_json(path), path)


def metrics_frame(result: Document, keys: tuple[str, ...] | None = ("R@10", "R@50")) -> pd.DataFrame:
    """One row per method: the averages and any per-domain/category scores for `keys` (None: all)."""
    if is_skipped(result):
        return pd.DataFrame({"skipped": [result["skipped"]]}, index=[result.get("profile", "")])
    first = next(iter(result["methods"].values()))
    keys = keys or tuple(k for k, v in first.items() if not isinstance(v, dict))
    by = group_key(result)
    rows = {}
    for method, scores in result["methods"].items():
        row = {(f"avg {k}" if by else k): scores[k] for k in keys if k in scores}
        for group in groups(result) if by else ():
            row.update({f"{group} {k}": scores[by][group][k] for k in keys if k in scores[by][group]})
        rows[METHOD_LABELS.get(method, method)] = row
    return pd.DataFrame.from_dict(rows, orient="index").round(2)


def paper_comparison(result: Document, task: str) -> pd.DataFrame:
    """Each method's scores beside its published ViT-L/14 numbers (reference_numbers.PUBLISHED): a row
    of ours, then a row per published source, named with the split each was measured on (CIRR: ours
    on val, the papers' on test1; CIRCO: ours on val, theirs on test). Empty without published numbers."""

    if is_skipped(result) or task not in SPLITS:
        return pd.DataFrame()
    ours_split, paper_split = SPLITS[task]
    rows: dict[str, dict[str, float]] = {}
    for pub in published_for(task):
        ours = result["methods"].get(pub.method)
        if ours is None:
            continue
        label = METHOD_LABELS.get(pub.method, pub.method)
        rows.setdefault(f"{label}: ours, {ours_split}", {k: ours.get(k, float("nan")) for k in pub.scores[task]})
        rows[f"{pub.label or label}: published, {paper_split}"] = dict(pub.scores[task])
    return pd.DataFrame.from_dict(rows, orient="index").round(2)


def published_sources(task: str) -> list[str]:
    """One line per published row of `task`: what it is, its source, and how far it was checked."""

    return [
        f"{p.label or METHOD_LABELS.get(p.method, p.method)}: {p.source} ({p.checked})" for p in published_for(task)
    ]


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| method | " + " | ".join(frame.columns) + " |"
    sep = "|---|" + "---|" * len(frame.columns)
    lines = [
        f"| {idx} | " + " | ".join("–" if pd.isna(v) else f"{v:.2f}" for v in row) + " |"
        for idx, row in frame.iterrows()
    ]
    return "\n".join([header, sep, *lines])


def sanity_frame(tables: dict[int, dict[str, float]]) -> pd.DataFrame:
    """Zero-shot accuracy (%) of each seed's demo CLIP: one row per seed."""
    return pd.DataFrame.from_dict({f"seed {s}": t for s, t in tables.items()}, orient="index").round(1)


def seed_comparison(results: dict[int, dict], metric: str = "R@10") -> pd.DataFrame:
    """Average `metric` per method (columns) for each seed (rows), then their mean and standard
    deviation over seeds; a skipped benchmark says so."""
    frame = pd.DataFrame.from_dict(
        {
            f"seed {s}": (
                {METHOD_LABELS.get(m, m): v[metric] for m, v in r["methods"].items()}
                if "methods" in r
                else {"skipped": r["skipped"]}
            )
            for s, r in results.items()
        },
        orient="index",
    )
    if len(results) > 1 and "skipped" not in frame:
        frame.loc["mean"] = frame.mean()
        frame.loc["std"] = frame.iloc[:-1].std(ddof=0)
    return frame.round(2)


def paired_difference_frame(results: dict[int, dict]) -> pd.DataFrame:
    """Per seed and K: the mean difference of the results' compared methods with its 95% interval."""
    rows = {}
    for seed, r in results.items():
        diff = r.get("paired_difference")
        if not diff:
            continue
        a, b = (METHOD_LABELS.get(m, m) for m in diff["methods"])
        for key, d in diff.items():
            if key != "methods":
                rows[f"seed {seed}, {key}"] = {
                    f"{a} - {b}": d["mean"],
                    "95% CI low": d["ci_low"],
                    "95% CI high": d["ci_high"],
                }
    return pd.DataFrame.from_dict(rows, orient="index").round(2)


def margin_note(results: dict[int, dict], key: str = "R@10") -> str:
    """One line per seed: Pic2Word's margin over image + text with its 95% interval (Fashion-IQ)."""
    parts = [
        f"seed {s}: {r['paired_difference'][key]['mean']:+.1f} [{r['paired_difference'][key]['ci_low']:+.1f}, "
        f"{r['paired_difference'][key]['ci_high']:+.1f}]"
        for s, r in results.items()
        if key in r.get("paired_difference", {})
    ]
    return f"Pic2Word - image + text, {key} (95% CI): " + "; ".join(parts) if parts else ""


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return round(mean, 2), round((sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5, 2)


# Short column names: `dvc metrics show --md` prints one column per key, and it must fit a screen.
SHORT_NAMES = {**{name: m.short for name, m in QUERY_METHODS.items()}, "oracle_text": "oracle"}


def summary_metrics(all_seeds: AllSeeds, keys: tuple[str, ...] = ("R@10",)) -> dict:
    """The small DVC metrics file of an evaluation stage: per method, the mean over seeds of the
    headline metric (the benchmark's `summary_keys`) and (`<method> sd`) its standard deviation (population, 2 decimals)."""
    runs = [r for r in all_seeds["seeds"].values() if "methods" in r]
    out: dict = {}
    if runs:  # a toy gallery smaller than K has no score at K: fall back to the first score it has
        first = next(iter(runs[0]["methods"].values()))
        keys = (
            tuple(k for k in keys if k in first)
            or tuple(k for k, v in first.items() if isinstance(v, (int, float)))[:1]
        )
    if not keys:
        return {"seeds": len(runs)}
    for method in runs[0]["methods"] if runs else ():
        name = SHORT_NAMES.get(method, method)
        mean, std = _mean_std([r["methods"][method][keys[0]] for r in runs])
        out.update({name: mean, f"{name} sd": std})
    diffs = [r["paired_difference"][keys[0]] for r in runs if keys[0] in r.get("paired_difference", {})]
    if diffs:  # Fashion-IQ: Pic2Word - image + text, and the worst seed's lower 95% bound
        out["margin"] = _mean_std([d["mean"] for d in diffs])[0]
        out["margin CI lo"] = round(min(d["ci_low"] for d in diffs), 2)
    out["seeds"] = len(runs)
    return out


def sanity_summary(tables: dict[int, dict[str, float]]) -> dict:
    """The demo CLIP's zero-shot accuracy (%) in the summary: mean over seeds of the photo domain's
    class accuracy, of the worst domain's, and of domain and colour."""
    rows = list(tables.values())
    worst = [min(v for k, v in t.items() if k.startswith("class (")) for t in rows]
    pick = {
        "clip photo": [t["class (photo)"] for t in rows],
        "clip worst": worst,
        "clip domain": [t["domain"] for t in rows],
        "clip colour": [t["colour"] for t in rows],
    }
    return {**{k: _mean_std(v)[0] for k, v in pick.items()}, "seeds": len(rows)}
