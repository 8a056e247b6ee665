"""The training loop every trainer shares: the schedule, log rows, periodic checkpoints, resume trimming."""

from __future__ import annotations

import csv
import math

import torch

from p2w_lib.training.loop import Loop, StepLog


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _run(loop, start, stop, seen, saved, opt=None):
    opt = opt or torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)

    def step(i):
        seen.append((i, opt.param_groups[0]["lr"]))  # the step runs at its scheduled rate
        return StepLog((f"{10 - i:.1f}",), 10.0 - i)

    return loop.run(start, stop, opt, lambda i: 0.5**i, step, saved.append)


def test_each_step_runs_at_its_rate_and_checkpoints_follow_the_cadence_but_not_the_end(tmp_path):
    loop = Loop(tmp_path / "log.csv", ("loss",), total=7, desc="t", checkpoint_every=3)
    seen, saved = [], []
    assert _run(loop, 0, 7, seen, saved) == 4.0
    assert seen == [(i, 0.5**i) for i in range(7)] and saved == [3, 6]  # the trainer saves the finished run
    assert _rows(tmp_path / "log.csv") == [["step", "loss", "lr"]] + [
        [str(i + 1), f"{10 - i:.1f}", f"{0.5**i:.3e}"] for i in range(7)
    ]


def test_a_resumed_run_drops_the_rows_past_its_checkpoint_and_logs_each_step_once(tmp_path):
    loop = Loop(tmp_path / "log.csv", ("loss",), total=6, desc="t", checkpoint_every=2)
    _run(loop, 0, 5, [], [])  # killed after step 5, last checkpoint at step 4
    seen = []
    _run(loop, 4, 6, seen, [])
    assert [i for i, _ in seen] == [4, 5]
    assert [r[0] for r in _rows(tmp_path / "log.csv")] == ["step", "1", "2", "3", "4", "5", "6"]
    assert _run(loop, 6, 6, [], []) == 5.0  # already finished: the loss it ended on, from the log


def test_log_every_keeps_the_last_step_and_a_silent_process_writes_nothing(tmp_path):
    loop = Loop(tmp_path / "log.csv", ("loss",), total=5, desc="t", checkpoint_every=100, log_every=2)
    _run(loop, 0, 5, [], [])
    assert [r[0] for r in _rows(tmp_path / "log.csv")] == ["step", "2", "4", "5"]
    other = Loop(tmp_path / "rank1.csv", ("loss",), total=5, desc="t", checkpoint_every=100, write=False)
    seen = []
    _run(other, 0, 5, seen, [])
    assert len(seen) == 5 and not (tmp_path / "rank1.csv").exists()
    assert math.isnan(_run(other, 5, 5, [], []))  # no log, nothing ran
