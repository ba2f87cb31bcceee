"""Experiment tracking shaped like Vertex AI Experiments, recorded in ratchet's metadata store.

    from ratchet import tracking

    tracking.init(experiment="churn")
    with tracking.start_run("lr-0.01") as run:
        run.log_params({"lr": 0.01})
        for step in range(100):
            run.log_time_series_metrics({"loss": 1 / (step + 1)}, step=step)
        run.log_metrics({"auc": 0.91})
    tracking.get_experiment_df()

The module-level functions act on one current tracker and run per process, as
Vertex's do; `Tracker` and `Run` (in `tracker`) are the explicit objects
behind them, for code that wants no hidden state.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.artifacts import ArtifactStore
from ratchet.config import Config, load_config
from ratchet.errors import FailedPrecondition
from ratchet.metadata import MetadataStore
from ratchet.tracking import tracker as _tracker
from ratchet.tracking.tracker import Run, RunState, Tracker

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

__all__ = [
    "Run",
    "RunState",
    "Tracker",
    "delete_experiment",
    "end_run",
    "get_experiment_df",
    "get_time_series_df",
    "init",
    "log_metrics",
    "log_params",
    "log_time_series_batch",
    "log_time_series_metrics",
    "open_tracker",
    "start_run",
]


def open_tracker(
    experiment: str, *, config: Config, description: str | None = None, create: bool = True
) -> Tracker:
    """A tracker on the stores `config` names, with run folders under `$RATCHET_HOME/runs`."""
    store = MetadataStore.from_config(config, create=create)
    try:
        return Tracker(
            store,
            experiment,
            description=description,
            run_root=config.home / "runs",
            artifacts=ArtifactStore.from_config(config),
        )
    except BaseException:
        store.close()
        raise


class _Current:
    """The process's current tracker and run: the state behind the module-level functions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tracker: Tracker | None = None
        self.run: Run | None = None

    def require_tracker(self) -> Tracker:
        if self.tracker is None:
            raise FailedPrecondition("call ratchet.tracking.init(experiment=...) first")
        return self.tracker

    def require_run(self) -> Run:
        if self.run is None or self.run.state != RunState.RUNNING:
            raise FailedPrecondition("no active run; call ratchet.tracking.start_run(name) first")
        return self.run

    def replace(self, tracker: Tracker | None) -> None:
        with self.lock:
            old, self.tracker, self.run = self.tracker, tracker, None
        if old is not None:
            old.close()
            old.store.close()


_current = _Current()


def init(
    experiment: str,
    *,
    description: str | None = None,
    home: str | Path | None = None,
    db_url: str | None = None,
    artifact_url: str | None = None,
) -> Tracker:
    """Set the current experiment (created if new) and the stores to record into."""
    config = load_config(home=home, db_url=db_url, artifact_url=artifact_url)
    tracker = open_tracker(experiment, config=config, description=description)
    _current.replace(tracker)
    return tracker


def start_run(run: str, *, resume: bool = False, tensorboard: bool = False) -> Run:
    """Start (or with `resume=True` continue) a run of the current experiment; it is current."""
    started = _current.require_tracker().start_run(run, resume=resume, tensorboard=tensorboard)
    _current.run = started
    return started


def log_params(params: Mapping[str, object]) -> None:
    _current.require_run().log_params(params)


def log_metrics(metrics: Mapping[str, object]) -> None:
    _current.require_run().log_metrics(metrics)


def log_time_series_metrics(
    metrics: Mapping[str, object], step: int | None = None, wall_time: float | None = None
) -> None:
    _current.require_run().log_time_series_metrics(metrics, step=step, wall_time=wall_time)


def log_time_series_batch(
    metrics: Mapping[str, Sequence[float] | npt.ArrayLike],
    *,
    steps: Sequence[int] | npt.ArrayLike,
    wall_times: Sequence[float] | npt.ArrayLike | None = None,
) -> None:
    _current.require_run().log_time_series_batch(metrics, steps=steps, wall_times=wall_times)


def end_run(state: RunState | str = RunState.COMPLETE) -> None:
    run = _current.require_run()
    run.end(state)
    _current.run = None


def get_experiment_df(experiment: str | None = None) -> pd.DataFrame:
    """The runs of `experiment` (default: the current one) as a table."""
    current = _current.require_tracker()
    current.flush()
    return _tracker.experiment_df(current.store, experiment or current.experiment.name)


def get_time_series_df(run: str | None = None) -> pd.DataFrame:
    """The time series of `run` of the current experiment (default: the current run)."""
    if run is None:
        current_run = _current.run
        if current_run is None:
            raise FailedPrecondition("no current run; name the run")
        return current_run.get_time_series_df()
    return _current.require_tracker().get_run(run).get_time_series_df()


def delete_experiment(experiment: str) -> int:
    """Delete an experiment with its runs; returns how many runs went."""
    current = _current.require_tracker()
    current.flush()
    deleted = _tracker.delete_experiment(current.store, experiment, run_root=current.run_root)
    if experiment == current.experiment.name:
        _current.replace(None)
    return deleted
