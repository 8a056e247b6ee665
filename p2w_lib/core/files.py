"""Atomic writes: a crash mid-write never leaves a truncated result or checkpoint behind.

Each writer writes to a temporary file in the destination folder, then renames it over the
target (`os.replace` is atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _target_mode(path: Path) -> int:
    """The mode the file should end with: the existing file's, else what open() gives under the umask
    (mkstemp creates 0600, which would make README.md or a metrics file private)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def tmp_prefix(path: Path) -> str:
    """Temporary files beside `path` carry the writer's pid, so stale ones of a killed writer can be
    told from those of a live one (see remove_stale_tmp)."""
    return f".{path.name}.{os.getpid()}."


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _target_mode(path))
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


STALE_AFTER_S = 600  # a writer on another host of a shared filesystem has no pid here: wait this long


def remove_stale_tmp(folder: Path, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete temporary files left in `folder` by writers that no longer run (killed mid-write):
    their pid is not running here and they have not been written to for `stale_after_s`."""
    import time

    removed = []
    for tmp in folder.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 3)[-3] if tmp.name.count(".") >= 4 else ""
        try:
            idle = time.time() - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        if pid.isdigit() and not _alive(int(pid)) and idle > stale_after_s:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def trim_step_log(path: Path, last_step: int) -> None:
    """Drop the rows of a CSV training log (first column `step`) past `last_step`, atomically: a
    run resumed from that step's checkpoint must not log the steps after it twice."""
    import csv

    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(rows[:1] + [r for r in rows[1:] if int(r[0]) <= last_step])


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
