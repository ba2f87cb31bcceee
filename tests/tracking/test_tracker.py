"""The tracking contract, on SQLite and PostgreSQL: runs, params, metrics, time series, frames."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ratchet.artifacts import ArtifactStore
from ratchet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ratchet.metadata import MetadataStore
from ratchet.tracking import RunState, Tracker
from ratchet.tracking.tracker import delete_experiment, experiment_df, resolve_run


@pytest.fixture
def tracker(store: MetadataStore, tmp_path: Path) -> Iterator[Tracker]:
    opened = Tracker(
        store,
        "exp",
        run_root=tmp_path / "runs",
        artifacts=ArtifactStore(str(tmp_path / "artifacts")),
    )
    yield opened
    opened.close()


def test_params_metrics_and_states_reach_the_experiment_frame(tracker: Tracker) -> None:
    with tracker.start_run("a") as run:
        run.log_params({"lr": 0.1, "layers": 3, "opt": "adam", "warm": True})
        run.log_metrics({"auc": 0.5})
        run.log_metrics({"auc": 0.75, "loss": 0.2})
    failed = tracker.start_run("b")
    failed.log_params({"lr": 0.01})
    failed.end("FAILED")
    frame = tracker.get_experiment_df()
    assert list(frame.columns[:3]) == ["experiment_name", "run_name", "state"]
    rows = frame.set_index("run_name")
    assert rows.loc["a", "state"] == "COMPLETE"
    assert rows.loc["a", "param.lr"] == 0.1
    assert rows.loc["a", "param.layers"] == 3
    assert rows.loc["a", "param.opt"] == "adam"
    assert rows.loc["a", "param.warm"] is True or rows.loc["a", "param.warm"] == True  # noqa: E712
    assert rows.loc["a", "metric.auc"] == 0.75  # the last value wins
    assert rows.loc["b", "state"] == "FAILED"
    assert math.isnan(rows.loc["b", "metric.auc"])
    assert set(frame["experiment_name"]) == {"exp"}


def test_time_series_round_trip_with_default_and_explicit_steps(tracker: Tracker) -> None:
    run = tracker.start_run("ts")
    run.log_time_series_metrics({"loss": 1.0, "acc": 0.1})
    run.log_time_series_metrics({"loss": 0.5, "acc": 0.2})
    run.log_time_series_metrics({"loss": 0.25}, step=10, wall_time=123.0)
    run.log_time_series_metrics({"loss": float("nan")})
    run.end()
    frame = run.get_time_series_df()
    assert list(frame["step"]) == [0, 1, 10, 11]
    assert list(frame["loss"][:3]) == [1.0, 0.5, 0.25]
    assert math.isnan(frame["loss"].iloc[3])
    assert list(frame["acc"][:2]) == [0.1, 0.2]
    assert math.isnan(frame["acc"].iloc[2])
    assert frame.loc[frame["step"] == 10, "wall_time"].item() == 123.0


def test_batched_time_series_and_numpy_scalars(tracker: Tracker) -> None:
    run = tracker.start_run("batch")
    steps = np.arange(1000)
    run.log_time_series_batch({"a": steps * 2.0, "b": np.ones(1000)}, steps=steps)
    run.log_time_series_metrics({"a": np.float32(7.0)}, step=1000)
    run.end()
    frame = run.get_time_series_df()
    assert len(frame) == 1001
    assert frame["a"].iloc[999] == 1998.0
    assert frame["a"].iloc[1000] == 7.0
    assert frame["b"].sum() == 1000.0


def test_batched_arrays_are_copied_before_the_caller_reuses_them(tracker: Tracker) -> None:
    run = tracker.start_run("reuse")
    values = np.empty(3)
    for epoch in range(2):
        values[:] = float(epoch)
        run.log_time_series_batch({"loss": values}, steps=np.arange(3) + 3 * epoch)
    run.end()
    assert list(run.get_time_series_df()["loss"]) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_run_name_collision_needs_resume_and_resume_continues_steps(tracker: Tracker) -> None:
    run = tracker.start_run("r")
    run.log_time_series_metrics({"loss": 3.0}, step=4)
    run.end()
    with pytest.raises(AlreadyExists, match="resume=True"):
        tracker.start_run("r")
    resumed = tracker.start_run("r", resume=True)
    assert resumed.state == RunState.RUNNING
    resumed.log_time_series_metrics({"loss": 2.0})
    resumed.end()
    assert list(resumed.get_time_series_df()["step"]) == [4, 5]
    with pytest.raises(NotFound):
        tracker.start_run("never", resume=True)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": [0.1]}, "must be a str, int, float or bool"),
        ({"lr": {"a": 1}}, "must be a str, int, float or bool"),
        ({"lr": None}, "must be a str, int, float or bool"),
        ({1: 2}, "names must be non-empty strings"),
    ],
)
def test_non_scalar_params_are_clear_errors(tracker: Tracker, params: object, message: str) -> None:
    run = tracker.start_run("p")
    with pytest.raises(InvalidArgument, match=message):
        run.log_params(params)  # type: ignore[arg-type]
    assert run.get_params() == {}


def test_bad_metrics_and_steps_are_clear_errors(tracker: Tracker) -> None:
    run = tracker.start_run("m")
    with pytest.raises(InvalidArgument, match="must be a number"):
        run.log_metrics({"auc": "high"})
    with pytest.raises(InvalidArgument, match="must be a number"):
        run.log_time_series_metrics({"loss": True})
    with pytest.raises(InvalidArgument, match="non-negative int"):
        run.log_time_series_metrics({"loss": 1.0}, step=-1)
    with pytest.raises(InvalidArgument):
        run.log_time_series_batch({"loss": ["x", "y"]}, steps=[0, 1])
    with pytest.raises(InvalidArgument, match="ints"):
        run.log_time_series_batch({"loss": [1.0, 2.0]}, steps=[0.7, 1.9])
    with pytest.raises(InvalidArgument, match="ints"):
        run.log_time_series_batch({"loss": [1.0]}, steps=["a"])
    with pytest.raises(InvalidArgument, match="differ in length"):
        run.log_time_series_batch({"loss": [1.0]}, steps=[0, 1])
    run.end()
    assert run.get_time_series_df().empty


def test_ended_run_refuses_logging(tracker: Tracker) -> None:
    run = tracker.start_run("done")
    run.end()
    for log in (
        lambda: run.log_params({"a": 1}),
        lambda: run.log_metrics({"a": 1}),
        lambda: run.log_time_series_metrics({"a": 1}),
        lambda: run.end(),
    ):
        with pytest.raises(FailedPrecondition, match="has ended"):
            log()


def test_bad_names_and_states(tracker: Tracker, store: MetadataStore) -> None:
    for name in ("", "a/b", "x" * 200):
        with pytest.raises(InvalidArgument):
            tracker.start_run(name)
    with pytest.raises(InvalidArgument):
        Tracker(store, "has/slash")
    run = tracker.start_run("s")
    with pytest.raises(InvalidArgument, match="unknown run state"):
        run.end("BROKEN")
    with pytest.raises(InvalidArgument):
        run.end(RunState.RUNNING)
    assert run.state == RunState.RUNNING


def test_context_manager_marks_failure(tracker: Tracker) -> None:
    with pytest.raises(ZeroDivisionError), tracker.start_run("boom") as run:
        run.log_metrics({"before": 1.0})
        _ = 1 / 0
    assert run.state == RunState.FAILED
    assert tracker.get_run("boom").get_metrics() == {"before": 1.0}


def test_logged_artifacts_are_attributed_and_deduplicated(tracker: Tracker, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    run = tracker.start_run("art")
    first = run.log_artifact(source)
    second = run.log_artifact(source, type="Artifact")
    run.end()
    assert first.id == second.id
    assert first.sha256 is not None and len(first.sha256) == 64
    attributed = tracker.store.find_artifacts(context=run.id)
    assert [a.id for a in attributed] == [first.id]


def test_tensorboard_event_files_hold_the_curves(tracker: Tracker) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tracker.start_run("tb", tensorboard=True)
    for step in range(50):
        run.log_time_series_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run.end()
    assert run.tensorboard_dir is not None
    events = EventAccumulator(str(run.tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = events.Scalars("loss")
    assert [s.step for s in scalars] == list(range(50))
    assert scalars[9].value == pytest.approx(0.1)
    logs = tracker.store.find_artifacts(type="TensorBoardLogs", context=run.id)
    assert [a.uri for a in logs] == [str(run.tensorboard_dir)]


def test_resolve_run_by_id_path_and_unique_name(tracker: Tracker, store: MetadataStore) -> None:
    run = tracker.start_run("unique")
    run.end()
    assert resolve_run(store, str(run.id)).id == run.id
    assert resolve_run(store, "exp/unique").id == run.id
    assert resolve_run(store, "unique").id == run.id
    other = Tracker(store, "exp2")
    other.start_run("unique").end()
    other.close()
    with pytest.raises(InvalidArgument, match="several experiments"):
        resolve_run(store, "unique")
    with pytest.raises(NotFound):
        resolve_run(store, "exp/missing")
    with pytest.raises(NotFound):
        resolve_run(store, str(tracker.experiment.id))


def test_delete_experiment_removes_runs_and_series(tracker: Tracker, store: MetadataStore) -> None:
    run = tracker.start_run("gone", tensorboard=True)
    run.log_time_series_metrics({"loss": 1.0})
    run.end()
    folder = run.folder
    assert folder.exists()
    assert delete_experiment(store, "exp", run_root=tracker.run_root) == 1
    with pytest.raises(NotFound):
        experiment_df(store, "exp")
    assert store.read_time_series(run.id) == {}
    assert not folder.exists()
    with pytest.raises(NotFound):
        delete_experiment(store, "exp")


def test_buffer_flushes_on_a_timer(store: MetadataStore) -> None:
    from ratchet.tracking.buffer import MetricBuffer

    buffer = MetricBuffer(store, interval=0.05)
    tracker = Tracker(store, "timer", buffer=buffer)
    run = tracker.start_run("r")
    run.log_time_series_metrics({"loss": 1.0}, step=0)
    deadline = time.monotonic() + 10
    while buffer.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert buffer.pending() == 0
    assert len(store.read_time_series(run.id)["loss"]) == 1
    tracker.close()
