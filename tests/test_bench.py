"""The benchmark script runs and measures the same loss on both paths (no timing assertions)."""
from __future__ import annotations

import json

from p2w_lib import bench


def test_train_step_bench_reports_equal_losses(tmp_path):
    out = bench.bench_train_step("p2w-tiny", batch=4, warmup=0, repeats=1)
    assert out["max_abs_loss_diff"] <= 1e-4
    assert out["prompt_tokens"] < out["context"] == 77
    assert out["ours_gflop_per_step"] < out["reference_gflop_per_step"]
    for key in ("reference_steps_per_s", "ours_steps_per_s", "speedup", "matmul_gflops_measured"):
        assert out[key] > 0


def test_bench_cli_writes_json(tmp_path, capsys):
    bench.main(["--model", "p2w-tiny", "--batch", "4", "--warmup", "0", "--repeats", "1",
                "--gallery", "12", "--queries", "4", "--out", str(tmp_path)])
    train = json.loads((tmp_path / "train_step.json").read_text())
    assert {"reference_steps_per_s", "ours_steps_per_s", "speedup", "max_abs_loss_diff"} <= set(train)
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["first_run_s"] > 0 and ev["warm_cache_run_s"] > 0
    assert "speedup" in capsys.readouterr().out
