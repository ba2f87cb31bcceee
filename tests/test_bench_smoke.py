"""Smoke tests of the benchmarks in bench/: `--quick` runs end to end and prints the ratchet rows.

Keeps the benchmarks from rotting as the APIs move; they assert nothing about speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_quick(script: str, tmp_path: Path) -> tuple[str, list[list[str]]]:
    """Run `bench/SCRIPT --quick`; returns its output and the cells of its table rows."""
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text().strip() == done.stdout.strip()
    cells = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in done.stdout.splitlines()
        if line[:2] == "| "
    ]
    return done.stdout, cells


def test_quick_tracking_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    stdout, cells = run_quick("bench_tracking.py", tmp_path)
    systems = {row[0]: row[1] for row in cells}
    for name in ("single-series", "single-summary", "batch-arrays", "batch-dict", "df"):
        assert systems.get(name) == "ratchet", stdout
    assert systems.get("batch-raw") == "raw sqlite3", stdout


def test_quick_pipeline_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    _, cells = run_quick("bench_pipelines.py", tmp_path)
    assert cells[0][:6] == ["case", "system", "tasks", "seconds", "per-task ms", "ratio"]
    rows = {(row[0], row[1]) for row in cells[1:]}
    assert rows == {("overhead", "ratchet"), ("cached", "ratchet"), ("diamond", "ratchet")}


def test_quick_data_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    _, cells = run_quick("bench_data.py", tmp_path)
    rows = {(row[0], row[1]) for row in cells[1:]}
    assert rows == {("pipeline", "ratchet local"), ("stats", "ratchet"), ("csv-stream", "ratchet")}


def test_quick_feeder_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    stdout, cells = run_quick("bench_feeder.py", tmp_path)
    rows = {(row[0], row[1]) for row in cells[1:]}
    assert ("throughput", "ratchet (numpy)") in rows, stdout
    assert ("mirrors", "ratchet") in rows, stdout


def test_quick_training_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    stdout, cells = run_quick("bench_training.py", tmp_path)
    rows = {(row[0], row[1]) for row in cells[1:]}
    assert ("throughput", "ratchet fit") in rows, stdout
    assert ("warmup", "ratchet, hit") in rows, stdout
    assert ("ddp", "torchrun, 2 processes") in rows, stdout


def test_quick_tuning_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    stdout, cells = run_quick("bench_tuning.py", tmp_path)
    rows = {(row[0], row[1]) for row in cells[1:]}
    assert ("overhead", "ratchet + MetadataStore (a)") in rows, stdout
    assert ("overhead", "ratchet, study only (b)") in rows, stdout
    assert ("overhead", "Optuna, in memory") in rows, stdout
    for rule in ("none", "median", "hyperband"):
        assert ("stopping", f"ratchet, {rule}") in rows, stdout
    assert ("parallel", "ratchet, parallel_trials=2") in rows, stdout


def test_quick_serving_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    stdout, cells = run_quick("bench_serving.py", tmp_path)
    rows = {(row[0], row[1]) for row in cells[1:]}
    for model in ("lightgbm", "mlp"):
        assert ("batch", f"ratchet predict_file ({model})") in rows, stdout
        assert ("endpoint", f"HTTP, 1 connection ({model})") in rows, stdout
        assert ("endpoint", f"in-process predict_records ({model})") in rows, stdout
