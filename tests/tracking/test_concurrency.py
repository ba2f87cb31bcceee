"""Four processes logging runs and time series into one store at once lose nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ratchet.metadata import MetadataStore
from ratchet.tracking.tracker import experiment_df

WORKERS = 4
RUNS = 5
STEPS = 300

WORKER = f"""
import sys
from ratchet.metadata import MetadataStore
from ratchet.tracking import Tracker
from ratchet.tracking.buffer import MetricBuffer

url, worker = sys.argv[1], int(sys.argv[2])
store = MetadataStore(url)
# A small buffer forces many interleaved flushes from every process.
tracker = Tracker(store, "shared", buffer=MetricBuffer(store, max_points=64, interval=0.01))
for r in range({RUNS}):
    with tracker.start_run(f"w{{worker}}-r{{r}}") as run:
        run.log_params({{"worker": worker, "run": r}})
        for step in range({STEPS}):
            run.log_time_series_metrics({{"loss": float(step), "acc": worker + step / 1000}})
        run.log_metrics({{"points": {STEPS}}})
tracker.close()
store.close()
"""


def test_four_processes_log_into_one_store(store_url: str, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen([sys.executable, str(script), store_url, str(w)], stderr=subprocess.PIPE)
        for w in range(WORKERS)
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * WORKERS, errors
    with MetadataStore(store_url) as store:
        frame = experiment_df(store, "shared")
        assert len(frame) == WORKERS * RUNS
        assert set(frame["state"]) == {"COMPLETE"}
        assert set(frame["metric.points"]) == {STEPS}
        total = 0
        for run in store.find_contexts(type="ExperimentRun"):
            series = store.read_time_series(run.id)
            assert list(series["loss"].steps) == list(range(STEPS))
            assert list(series["loss"].values) == [float(s) for s in range(STEPS)]
            total += sum(len(block) for block in series.values())
    assert total == WORKERS * RUNS * STEPS * 2
