"""Recording an in-process trial: its run, series and job, written whole or not at all.

Every test runs on SQLite and PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ratchet.errors import NotFound
from ratchet.metadata import Artifact, MetadataStore
from ratchet.tracking import Tracker
from ratchet.training.contract import TrainingContext
from ratchet.training.jobs import JOB_TYPES, JobResult
from ratchet.tuning.recording import record_trial
from ratchet.tuning.study import TrialRecord


def _trial(tmp_path: Path) -> tuple[TrialRecord, JobResult, TrainingContext]:
    model_dir = tmp_path / "trial-0003" / "model"
    model_dir.mkdir(parents=True)
    reports = [
        {"step": 1, "time": 10.0, "metrics": {"loss": 0.5, "accuracy": math.nan}},
        {"step": 2, "time": 11.0, "metrics": {"loss": 0.25, "accuracy": 0.75}},
    ]
    logs = model_dir.with_name("model.log")
    result = JobResult("COMPLETE", None, logs, model_dir, None, reports)
    record = TrialRecord(3, "COMPLETE", {"x": 0.5, "kind": "a"}, result.metrics, {1: 0.5, 2: 0.25})
    context = TrainingContext(model_dir=model_dir, trial_id="study/3")
    return record, result, context


def test_a_trial_is_recorded_as_a_run_with_its_series_and_job(
    store: MetadataStore, tmp_path: Path
) -> None:
    tracker = Tracker(store, "study")
    record, result, context = _trial(tmp_path)
    run_id = record_trial(
        store,
        tracker.experiment,
        record,
        result,
        context=context,
        script="train",
        started=9.0,
        inputs={},
    )
    run = store.get_context(run_id)
    assert run.name == "study/trial-0003"
    assert {k: run.properties[k] for k in ("experiment", "run_name", "state", "start_time")} == {
        "experiment": "study",
        "run_name": "trial-0003",
        "state": "COMPLETE",
        "start_time": 9.0,
    }
    assert run.custom_properties == {
        "param.x": 0.5,
        "param.kind": "a",
        "metric.loss": 0.25,
        "metric.accuracy": 0.75,
    }
    assert store.find_parents(run_id) == [tracker.experiment]
    series = store.read_time_series(run_id)
    assert series["loss"].steps.tolist() == [1, 2]
    assert series["accuracy"].steps.tolist() == [2]  # the NaN point is left out
    [job] = store.find_executions(type="TrainingJob", context=run_id)
    assert job.properties["state"] == "COMPLETE"
    assert job.properties["trial_id"] == "study/3"
    assert job.properties["launcher"] == "inprocess"
    tracker.close()


def test_a_trial_whose_last_write_fails_leaves_nothing_half_written(
    store: MetadataStore, tmp_path: Path
) -> None:
    tracker = Tracker(store, "study")
    record, result, context = _trial(tmp_path)
    for record_type in JOB_TYPES:  # declared ahead of every trial's transaction, as it does
        store.put_type(record_type)
    before = store.counts()
    # The job's input does not exist: the execution, written last, is refused.
    missing = {"dataset": Artifact("Dataset", id=10**6)}
    with pytest.raises(NotFound, match="no artifact"):
        record_trial(
            store,
            tracker.experiment,
            record,
            result,
            context=context,
            script="train",
            started=9.0,
            inputs=missing,
        )
    assert store.counts() == before
    assert store.find_context("ExperimentRun", "study/trial-0003") is None
    tracker.close()
