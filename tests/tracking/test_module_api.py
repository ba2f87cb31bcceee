"""The Vertex-AI-shaped module functions, on an isolated RATCHET_HOME and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ratchet import tracking
from ratchet.errors import FailedPrecondition, NotFound


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    tracking._current.replace(None)


def test_module_functions_record_a_run(home: Path) -> None:
    with pytest.raises(FailedPrecondition, match="init"):
        tracking.start_run("early")
    tracking.init(experiment="e", description="first")
    with pytest.raises(FailedPrecondition, match="no active run"):
        tracking.log_params({"a": 1})
    tracking.start_run("r1")
    tracking.log_params({"lr": 0.5})
    for step in range(5):
        tracking.log_time_series_metrics({"loss": 5.0 - step}, step=step)
    tracking.log_metrics({"final": 1.0})
    tracking.end_run()
    with pytest.raises(FailedPrecondition):
        tracking.log_metrics({"late": 1.0})
    frame = tracking.get_experiment_df()
    assert frame.loc[0, "param.lr"] == 0.5
    assert frame.loc[0, "metric.final"] == 1.0
    assert list(tracking.get_time_series_df("r1")["loss"]) == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert (home / "metadata.db").exists()


def test_other_experiments_and_deletion(home: Path) -> None:
    tracking.init(experiment="one")
    with tracking.start_run("x"):
        tracking.log_metrics({"m": 1.0})
    tracking.init(experiment="two")
    assert list(tracking.get_experiment_df("one")["run_name"]) == ["x"]
    assert tracking.get_experiment_df().empty
    with pytest.raises(NotFound):
        tracking.get_experiment_df("missing")
    assert tracking.delete_experiment("one") == 1
    with pytest.raises(NotFound):
        tracking.get_experiment_df("one")


def test_module_functions_on_postgresql(home: Path, pg_url: str) -> None:
    tracking.init(experiment="pg", db_url=pg_url)
    with tracking.start_run("r"):
        tracking.log_time_series_metrics({"loss": 1.0})
    assert tracking.get_experiment_df().loc[0, "state"] == "COMPLETE"


def test_points_buffered_at_exit_are_written(home: Path) -> None:
    import subprocess
    import sys

    script = (
        "from ratchet import tracking\n"
        "tracking.init(experiment='exit')\n"
        "run = tracking.start_run('r')\n"
        "for step in range(1000):\n"
        "    tracking.log_time_series_metrics({'loss': float(step)}, step=step)\n"
        "tracking.log_metrics({'last': 999.0})\n"
        # no end_run: the interpreter's exit hook must write the buffer
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    tracking.init(experiment="exit")
    assert len(tracking.get_time_series_df("r")) == 1000
    frame = tracking.get_experiment_df()
    assert frame.loc[0, "metric.last"] == 999.0
    assert frame.loc[0, "state"] == "RUNNING"
