"""The results documents the protocols write and the reports, figures and README read, typed, so a
reader looks a field up instead of guessing which keys a document has.

One seed of one benchmark is a `ResultsDocument` (`results/<profile>/metrics/<benchmark>.json`), or
a `SkippedDocument` when the benchmark was switched off; `<benchmark>_all_seeds.json` is `AllSeeds`.
A method's scores map "<metric>@K" (R@10, mAP@5, Rs@1, ...) to percent; a grouped benchmark (domain
conversion: per ImageNet-R domain, Fashion-IQ: per category) also keeps each group's scores under
the document's `group_key`, in the order `groups` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NotRequired, TypedDict

Scores = dict[str, float]  # "R@10" -> percent


class Interval(TypedDict):
    mean: float
    ci_low: float
    ci_high: float


class ResultsDocument(TypedDict):
    profile: str
    seed: int
    metric: str  # what the scores measure: "true_recall", "hit_rate", "map", ...
    methods: dict[str, dict[str, Any]]  # method -> Scores (+ {group_key: {group: Scores}})
    group_key: NotRequired[str]  # grouped benchmarks: "per_domain" or "per_category"
    groups: NotRequired[list[str]]  # ... and their groups, in report order
    paired_difference: NotRequired[dict[str, Any]]  # {"methods": [a, b], "R@10": Interval, ...}
    comparisons: NotRequired[dict[str, Any]]  # {"baseline": m, "R@10": {method: Interval}, ...} (comparisons.py)
    comparisons_to_pic2word: NotRequired[dict[str, Any]]  # the same against Pic2Word
    prompts: NotRequired[str]  # eval.prompts: "own" (each method its paper's), "pic2word" or "searle"
    protocols: NotRequired[dict[str, str]]  # method -> prompt family, where it is not Pic2Word's
    under_pic2word_prompts: NotRequired[dict[str, Any]]  # those methods' scores under Pic2Word's prompts


class SkippedDocument(TypedDict):
    profile: str
    seed: int
    skipped: str  # why: the switch that turned the benchmark off


Document = ResultsDocument | SkippedDocument


class AllSeeds(TypedDict):
    seeds: dict[str, Document]  # seed (as a string: JSON keys) -> its document


def is_skipped(doc: Document) -> bool:
    return "skipped" in doc


def group_key(doc: ResultsDocument) -> str | None:
    """Where each method keeps its per-group scores; None for a benchmark without groups."""
    return doc.get("group_key")


def groups(doc: ResultsDocument) -> list[str]:
    return list(doc.get("groups", []))


def check_document(doc: Any, path: str | Path) -> Document:
    """`doc` as read from `path`, or a ValueError that says what is wrong and what to do."""
    redo = "re-run the stage that writes it (dvc repro)"
    if not isinstance(doc, dict) or ("methods" not in doc and "skipped" not in doc):
        raise ValueError(f"{path}: not a results document (neither 'methods' nor 'skipped'); {redo}")
    if "methods" in doc and ("group_key" in doc) != ("groups" in doc):
        raise ValueError(
            f"{path}: a grouped results document needs both 'group_key' and 'groups'; it was "
            f"written by an older version of p2w_lib: {redo}"
        )
    return doc
