"""Smoke test of bench/bench_tracking.py: `--quick` runs end to end and prints the ratchet rows.

Keeps the benchmark from rotting as the tracking API moves; it asserts nothing about speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_tracking.py"


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
