"""The training loop every trainer shares: log rows, periodic checkpoints, resume trimming."""
from __future__ import annotations

import csv

from p2w_lib.loop import Loop, StepLog


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _run(loop, start, stop, seen, saved):
    def step(i):
        seen.append(i)
        return StepLog((f"{10 - i:.1f}",), 10.0 - i)

    return loop.run(start, stop, step, saved.append)


def test_logs_every_step_and_checkpoints_on_the_cadence_but_not_at_the_end(tmp_path):
    loop = Loop(tmp_path / "log.csv", ("loss",), total=7, desc="t", checkpoint_every=3)
    seen, saved = [], []
    assert _run(loop, 0, 7, seen, saved) == 4.0
    assert seen == list(range(7)) and saved == [3, 6]  # the trainer saves the finished run itself
    assert _rows(tmp_path / "log.csv") == [["step", "loss"]] + [[str(i + 1), f"{10 - i:.1f}"] for i in range(7)]


def test_a_resumed_run_drops_the_rows_past_its_checkpoint_and_logs_each_step_once(tmp_path):
    loop = Loop(tmp_path / "log.csv", ("loss",), total=6, desc="t", checkpoint_every=2)
    _run(loop, 0, 5, [], [])  # killed after step 5, last checkpoint at step 4
    seen = []
    _run(loop, 4, 6, seen, [])
    assert seen == [4, 5]
    assert [r[0] for r in _rows(tmp_path / "log.csv")] == ["step", "1", "2", "3", "4", "5", "6"]


def test_log_every_keeps_the_last_step_and_a_silent_process_writes_nothing(tmp_path):
    loop = Loop(tmp_path / "log.csv", ("loss",), total=5, desc="t", checkpoint_every=100, log_every=2)
    _run(loop, 0, 5, [], [])
    assert [r[0] for r in _rows(tmp_path / "log.csv")] == ["step", "2", "4", "5"]
    other = Loop(tmp_path / "rank1.csv", ("loss",), total=5, desc="t", checkpoint_every=100, write=False)
    seen, saved = [], []
    _run(other, 0, 5, seen, saved)
    assert seen == list(range(5)) and not (tmp_path / "rank1.csv").exists()
    assert _run(loop, 5, 5, [], []) != _run(loop, 5, 5, [], [])  # nothing ran: nan
