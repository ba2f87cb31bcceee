"""Smoke tests of the benchmarks in bench/: `--quick` runs end to end and prints the ratchet rows.

Keeps the benchmarks from rotting as the tracking and pipeline APIs move; they assert
nothing about speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_tracking.py"
PIPELINES_BENCH = BENCH.parent / "bench_pipelines.py"
DATA_BENCH = BENCH.parent / "bench_data.py"


def test_quick_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cells = [line.strip("|").split("|") for line in done.stdout.splitlines() if line[:2] == "| "]
    systems = {row[0].strip(): row[1].strip() for row in cells}
    for name in ("single-series", "single-summary", "batch-arrays", "batch-dict", "df"):
        assert systems.get(name) == "ratchet", done.stdout
    assert systems.get("batch-raw") == "raw sqlite3", done.stdout
    assert out.read_text() == done.stdout


def test_quick_pipeline_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, str(PIPELINES_BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cells = [line.strip("|").split("|") for line in done.stdout.splitlines() if line[:2] == "| "]
    header = [c.strip() for c in cells[0]]
    assert header[:6] == ["case", "system", "tasks", "seconds", "per-task ms", "ratio"]
    rows = {(row[0].strip(), row[1].strip()) for row in cells[1:]}
    assert rows == {("overhead", "ratchet"), ("cached", "ratchet"), ("diamond", "ratchet")}
    assert out.read_text() == done.stdout


def test_quick_data_benchmark_prints_the_ratchet_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, str(DATA_BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cells = [line.strip("|").split("|") for line in done.stdout.splitlines() if line[:2] == "| "]
    rows = {(row[0].strip(), row[1].strip()) for row in cells[1:]}
    assert rows == {("pipeline", "ratchet local"), ("stats", "ratchet"), ("csv-stream", "ratchet")}
    assert out.read_text().strip() == done.stdout.strip()
