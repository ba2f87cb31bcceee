"""Recording a trial that ran in process: its tracking run and job in one transaction at its end.

Owns `record_trial`. A script trial is recorded live (its tracking run is open
while it trains, so its curves show up as they come); a trial run in process is
usually short, and recording it live would cost more than the trial itself.
Here the same records — an `ExperimentRun` under the study's experiment with
its parameters, final metrics and state, its reported points as time series,
and its `TrainingJob` execution associated with the run — are written when
the trial ends, in one transaction: a trial is recorded whole or not at all,
and one commit costs a fraction of four.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ratchet.metadata import Artifact, Context, MetadataStore
from ratchet.metadata.series import SeriesBlock
from ratchet.tracking.tracker import METRIC, PARAM, RUN, run_context_name
from ratchet.training.contract import TrainingContext
from ratchet.training.jobs import JOB_TYPES, JobResult, record_job
from ratchet.tuning.study import TrialRecord

_RUN_STATE = {"COMPLETE": "COMPLETE", "STOPPED": "COMPLETE", "FAILED": "FAILED"}


def record_trial(
    store: MetadataStore,
    experiment: Context,
    record: TrialRecord,
    result: JobResult,
    *,
    context: TrainingContext,
    script: str,
    started: float,
    inputs: Mapping[str, Artifact],
) -> int:
    """Write the trial's run, time series and job; returns the run's context id."""
    name = f"trial-{record.number:04d}"
    finite = {k: v for k, v in record.metrics.items() if math.isfinite(v)}
    custom: dict[str, Any] = {f"{PARAM}{k}": v for k, v in record.parameters.items()}
    custom.update({f"{METRIC}{k}": v for k, v in finite.items()})
    # Declared before the transaction, not inside it: a type declared inside one is cached
    # for the whole store before it commits, and a parallel trial's insert naming it then
    # fails its foreign key (seen on PostgreSQL with two trials ending together).
    for record_type in JOB_TYPES:
        store.put_type(record_type)
    with store.transaction() as tx:
        run = tx.put_context(
            Context(
                RUN,
                run_context_name(experiment.name, name),
                properties={
                    "experiment": experiment.name,
                    "run_name": name,
                    "state": _RUN_STATE.get(record.state, "FAILED"),
                    "start_time": started,
                    "end_time": time.time(),
                },
                custom_properties=custom,
            )
        )
        assert run.id is not None and experiment.id is not None
        tx.put_parent_context(experiment.id, run.id)
        blocks = _series(run.id, result.reports)
        if blocks:
            tx.write_time_series(blocks)
        record_job(tx, result, "inprocess", script, context, inputs, started, run)
    return run.id


def _series(run_id: int, reports: list[dict[str, Any]]) -> list[SeriesBlock]:
    points: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for item in reports:
        for metric, value in item["metrics"].items():
            if math.isfinite(value):
                steps, times, values = points.setdefault(metric, ([], [], []))
                steps.append(int(item["step"]))
                times.append(float(item["time"]))
                values.append(float(value))
    return [
        SeriesBlock.of(run_id, metric, np.array(s), np.array(t), np.array(v))
        for metric, (s, t, v) in points.items()
    ]
