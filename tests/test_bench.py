"""The benchmark script runs and measures the same loss on both paths (no timing assertions)."""

from __future__ import annotations

import json

from p2w_lib.tools import bench


def test_train_step_bench_reports_equal_losses(tmp_path):
    out = bench.bench_train_step("p2w-tiny", batch=4, warmup=0, repeats=1)
    paths = out["paths"]
    assert list(paths) == ["reference", "truncated", "prefix-cached"]
    assert all(row["abs_loss_diff"] <= 1e-5 for row in paths.values())
    assert out["prompt_tokens"] < out["context"] == 77
    # Fewer FLOPs on each shortcut: counted, not timed.
    assert (
        paths["prefix-cached"]["gflop_per_step"]
        < paths["truncated"]["gflop_per_step"]
        < paths["reference"]["gflop_per_step"]
    )
    assert all(row["steps_per_s"] > 0 for row in paths.values()) and out["matmul_gflops_measured"] > 0


def test_bench_cli_writes_json(tmp_path, capsys):
    bench.main(
        [
            "--model",
            "p2w-tiny",
            "--batch",
            "4",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--gallery",
            "12",
            "--queries",
            "4",
            "--view-images",
            "4",
            "--epochs",
            "3",
            "--ann-size",
            "3000",
            "--ann-queries",
            "20",
            "--out",
            str(tmp_path),
        ]
    )
    train = json.loads((tmp_path / "train_step.json").read_text())
    assert {"steps_per_s", "speedup", "abs_loss_diff"} <= set(train["paths"]["prefix-cached"])
    views = json.loads((tmp_path / "augmentation.json").read_text())
    assert [r["passes"] for r in views["rows"].values()] == [3, 1, 2, 4, 8]
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["rows"]["exact"]["recall_at_10"] == 1.0 and search["cells"] > 1
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["first_run_s"] > 0 and ev["warm_cache_run_s"] > 0
    assert "speedup" in capsys.readouterr().out


def test_search_bench_recall_is_measured_against_exact_search():
    out = bench.bench_ann(4000, 32, 50, nprobes=(1, 1000))
    assert out["rows"]["ivf nprobe=1000"]["recall_at_10"] >= 0.999  # every cell scanned: exact
    assert out["rows"]["ivf nprobe=1"]["recall_at_10"] < 1.0
