"""Test-server submission files: written compactly, and checked against each server's rules before
they are written, so a file that the server would reject never reaches the user.

CIRR (rc2 test1): a JSON object with "version": "rc2", "metric": "recall" or "recall_subset",
and one list of image names per test1 pairid (50 for recall, 3 for recall_subset); the server
takes files of at most 5 MB. CIRCO (test): a JSON object mapping every test query id to the list
of its top-50 unlabeled2017 image ids, integers without repeats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from p2w_lib.core.files import atomic_write_text

CIRR_VERSION = "rc2"
CIRR_LIST_LENGTH = {"recall": 50, "recall_subset": 3}
CIRR_MAX_BYTES = 5_000_000  # the server's limit, read as decimal megabytes (the stricter reading of "5 MB")
CIRCO_LIST_LENGTH = 50


class SubmissionError(ValueError):
    """A submission file would be rejected by its evaluation server."""


def encode(obj: Any) -> str:
    """Compact JSON: no indentation or spaces (CIRR's recall file is ~4 MB compact, over 5 MB indented)."""
    return json.dumps(obj, separators=(",", ":"))


def write_submission(path: str | Path, obj: dict) -> Path:
    atomic_write_text(path, encode(obj))
    return Path(path)


def _problems_in_lists(obj: dict, ids: Iterable, length: int, item_type: type, what: str) -> list[str]:
    problems = []
    expected = {str(i) for i in ids}
    missing = sorted(expected - set(obj), key=str)
    if missing:
        problems.append(f"{len(missing)} {what}s have no list (first: {missing[:3]})")
    for key in sorted(set(obj) - expected, key=str):
        problems.append(f"unknown {what} {key!r}")
    for key in sorted(expected & set(obj), key=str):
        value = obj[key]
        if not isinstance(value, list) or len(value) != length:
            problems.append(
                f"{what} {key}: needs a list of {length}, got {type(value).__name__} of {len(value) if isinstance(value, list) else '-'}"
            )
        elif not all(isinstance(v, item_type) and not isinstance(v, bool) for v in value):
            problems.append(f"{what} {key}: entries must be {item_type.__name__}")
        elif len(set(value)) != len(value):
            problems.append(f"{what} {key}: repeated entries")
        if len(problems) >= 10:
            problems.append("...")
            break
    return problems


def _raise(server: str, problems: list[str]) -> None:
    if problems:
        raise SubmissionError(f"{server} submission would be rejected by the server:\n  " + "\n  ".join(problems))


def check_cirr_submission(obj: dict, pairids: Iterable[int], metric: str) -> None:
    """Raise SubmissionError listing every rule of the CIRR server that `obj` breaks."""
    if metric not in CIRR_LIST_LENGTH:
        raise ValueError(f"CIRR metric {metric!r}; choose from {tuple(CIRR_LIST_LENGTH)}")
    problems = []
    if obj.get("version") != CIRR_VERSION:
        problems.append(f"'version' must be {CIRR_VERSION!r}, got {obj.get('version')!r}")
    if obj.get("metric") != metric:
        problems.append(f"'metric' must be {metric!r}, got {obj.get('metric')!r}")
    lists = {k: v for k, v in obj.items() if k not in ("version", "metric")}
    problems += _problems_in_lists(lists, pairids, CIRR_LIST_LENGTH[metric], str, "pairid")
    size = len(encode(obj).encode())
    if size > CIRR_MAX_BYTES:
        problems.append(f"{size:,} bytes, over the server's {CIRR_MAX_BYTES:,}")
    _raise(f"CIRR test1 {metric}", problems)


def check_circo_submission(obj: dict, query_ids: Iterable[int]) -> None:
    """Raise SubmissionError listing every rule of the CIRCO server that `obj` breaks."""
    _raise("CIRCO test", _problems_in_lists(obj, query_ids, CIRCO_LIST_LENGTH, int, "query id"))
