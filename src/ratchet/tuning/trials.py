"""Running a study's trials: each one a training job, a tracking run and a metadata execution.

Owns `TrialTarget` (the training script or callable every trial runs, the
hyperparameters they all share, the dataset and the initial weights they all
start from) and `run_trials`: `parallel_trials` workers each ask the study for
a trial, run it through `ratchet.training.jobs.run_job` (a subprocess for a
script, in process for a callable), pass its intermediate reports to the
study's early-stopping rule (which can stop the job), and tell the study how
it ended. A failed trial is recorded FAILED with its reason and the study goes
on, until more than `failure_budget` trials of this call have failed. Trials a
dead worker of this machine left RUNNING are failed and queued again first.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from ratchet.config import Config
from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.metadata import Artifact, MetadataStore
from ratchet.tracking import Tracker
from ratchet.training.contract import TrainingContext
from ratchet.training.jobs import COMPLETE, JobResult, run_job
from ratchet.tuning.recording import record_trial
from ratchet.tuning.space import Value
from ratchet.tuning.study import FAILED, STOPPED, Study, TrialRecord

if TYPE_CHECKING:
    # An annotation only: the hub imports torch (over a second), which a process that
    # runs or records a study does not otherwise need.
    from ratchet.training.hub import WeightsRef

WORKER_ATTR = "worker"
TrialHook = Callable[[TrialRecord], None]


@dataclass(frozen=True)
class TrialTarget:
    """What every trial of a study runs, and what they all share."""

    target: str | Callable[..., Any]  # "module:NAME", a script path, or a callable
    fixed: Mapping[str, Any] = field(default_factory=dict)
    dataset: Path | None = None  # the prepared dataset folder (RATCHET_DATASET)
    dataset_version: str | None = None  # its content hash, for lineage
    init_weights: WeightsRef | None = None  # every trial starts from these weights
    stores: Config | None = None  # passed to script trials, which load weights from the hub

    @property
    def launcher(self) -> str:
        return "inprocess" if callable(self.target) else "process"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_trials(
    study: Study,
    target: TrialTarget,
    *,
    max_trials: int,
    parallel_trials: int = 1,
    failure_budget: int = 3,
    root: Path,
    store: MetadataStore | None = None,
    on_trial: TrialHook | None = None,
) -> list[TrialRecord]:
    """Run trials until the study holds `max_trials` finished ones; returns this call's."""
    if max_trials < 1 or parallel_trials < 1 or failure_budget < 0:
        raise InvalidArgument("max_trials and parallel_trials >= 1, failure_budget >= 0")
    requeue_dead_workers(study)
    tracker = Tracker(store, study.name, run_root=root / "runs") if store is not None else None
    inputs = _lineage_inputs(store, target)
    lock = threading.Lock()
    state = {"in_flight": 0, "failed": 0}
    finished: list[TrialRecord] = []
    reasons: list[str] = []

    def claim() -> bool:
        with lock:
            done = len(
                study.optuna.get_trials(
                    deepcopy=False,
                    states=(
                        optuna.trial.TrialState.COMPLETE,
                        optuna.trial.TrialState.PRUNED,
                        optuna.trial.TrialState.FAIL,
                    ),
                )
            )
            if state["failed"] > failure_budget or done + state["in_flight"] >= max_trials:
                return False
            state["in_flight"] += 1
            return True

    def work() -> None:
        while claim():
            try:
                record = _one_trial(study, target, root, store, tracker, inputs)
            finally:
                with lock:
                    state["in_flight"] -= 1
            with lock:
                finished.append(record)
                if record.state == "FAILED":
                    state["failed"] += 1
                    reasons.append(str(record.attributes.get("reason", "")))
            if on_trial is not None:
                on_trial(record)

    try:
        with ThreadPoolExecutor(parallel_trials, thread_name_prefix="ratchet-trial") as pool:
            for future in [pool.submit(work) for _ in range(parallel_trials)]:
                future.result()
    finally:
        if tracker is not None:
            tracker.close()
    if state["failed"] > failure_budget:
        raise FailedPrecondition(
            f"study {study.name!r}: {state['failed']} trials failed, over the failure budget "
            f"of {failure_budget}; the last: {reasons[-1]}"
        )
    return sorted(finished, key=lambda r: r.number)


def _one_trial(
    study: Study,
    target: TrialTarget,
    root: Path,
    store: MetadataStore | None,
    tracker: Tracker | None,
    inputs: Mapping[str, Artifact],
) -> TrialRecord:
    trial = study.optuna.ask()
    trial.set_user_attr(WORKER_ATTR, worker_name())
    parameters = study.config.suggest(trial)
    hyperparameters = {**target.fixed, **parameters}
    if target.init_weights is not None:
        hyperparameters.setdefault("init_weights", target.init_weights.sha256)
    folder = root / study.name / f"trial-{trial.number:04d}"
    context = TrainingContext(
        model_dir=folder / "model",
        dataset=str(target.dataset) if target.dataset is not None else None,
        trial_id=f"{study.name}/{trial.number}",
        stores=target.stores,
    )
    started = time.time()
    # A script's run is open while it trains (live curves); an in-process trial's is
    # written when it ends (`recording`).
    live = tracker is not None and not callable(target.target)
    run = tracker.start_run(f"trial-{trial.number:04d}") if live and tracker else None
    if run is not None:
        run.log_params({k: v for k, v in parameters.items()})

    judged: dict[int, float] = {}

    def judge(step: int, metrics: dict[str, float]) -> bool:
        # A final report may repeat the last evaluation's step: judge each step once.
        value = metrics.get(study.config.metrics[0].name)
        if step in judged or value is None or not math.isfinite(value):
            return False
        judged[step] = value
        return _measure(study, trial, step, value)

    result = run_job(
        target.target,
        hyperparameters,
        context=context,
        launcher=target.launcher,
        store=store if live else None,
        inputs=inputs,
        on_report=judge,
        run=run,
    )
    record = _tell(study, trial, parameters, result, judged)
    if tracker is not None and store is not None and not live:
        script = getattr(target.target, "__qualname__", "trial")
        record_trial(
            store,
            tracker.experiment,
            record,
            result,
            context=context,
            script=script,
            started=started,
            inputs=inputs,
        )
    if run is not None:
        finite = {k: v for k, v in record.metrics.items() if math.isfinite(v)}
        if finite:
            run.log_metrics(finite)
        run.end("COMPLETE" if record.state in ("COMPLETE", "STOPPED") else "FAILED")
    return record


def _measure(study: Study, trial: optuna.Trial, step: int, value: float) -> bool:
    if len(study.config.metrics) > 1:
        return False  # Optuna stops single-objective trials only
    trial.report(value, step)
    return trial.should_prune()


def _tell(
    study: Study,
    trial: optuna.Trial,
    parameters: dict[str, Value],
    result: JobResult,
    intermediate: dict[int, float],
) -> TrialRecord:
    """Tell the study how the trial ended; the record is built here, not read back (a read
    per trial is a journal round trip, and this is on every trial's path)."""
    attributes: dict[str, Any] = {WORKER_ATTR: worker_name()}
    if result.state == "STOPPED":
        study.optuna.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return TrialRecord(trial.number, STOPPED, parameters, {}, intermediate, attributes)
    reason = result.reason
    if result.state == COMPLETE:
        try:
            values = study._values(result.metrics)
        except InvalidArgument as e:
            reason = str(e)
        else:
            objectives = {m.name for m in study.config.metrics}
            if set(result.metrics) - objectives:  # the values keep the objectives already
                trial.set_user_attr("metrics", result.metrics)
            study.optuna.tell(trial, values)
            return TrialRecord(
                trial.number, COMPLETE, parameters, result.metrics, intermediate, attributes
            )
    attributes["reason"] = f"{result.state}: {reason} (logs: {result.logs})"[:2000]
    trial.set_user_attr("reason", attributes["reason"])
    study.optuna.tell(trial, state=optuna.trial.TrialState.FAIL)
    return TrialRecord(trial.number, FAILED, parameters, result.metrics, intermediate, attributes)


def _lineage_inputs(store: MetadataStore | None, target: TrialTarget) -> dict[str, Artifact]:
    if store is None:
        return {}
    inputs: dict[str, Artifact] = {}
    if target.dataset_version is not None:
        found = store.find_artifacts(type="Dataset", sha256=target.dataset_version)
        if found:
            inputs["dataset"] = found[0]
    if target.init_weights is not None:
        inputs["initial_weights"] = store.get_artifact(target.init_weights.artifact_id)
    return inputs


def requeue_dead_workers(study: Study) -> list[int]:
    """Fail the RUNNING trials of workers of this machine that are gone; queue them again."""
    host = socket.gethostname()
    requeued = []
    for frozen in study.optuna.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
    ):
        worker = str(frozen.user_attrs.get(WORKER_ATTR, ""))
        name, _, pid = worker.partition(":")
        if name != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study.optuna.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        study.optuna.enqueue_trial(dict(frozen.params), skip_if_exists=False)
        requeued.append(frozen.number)
    return requeued


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
