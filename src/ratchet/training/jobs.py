"""Training jobs: one training script run in process, as a subprocess, or under `torchrun`.

Owns `run_job`: it gives the script its hyperparameters (keyword arguments, or
`--name value` arguments) and its `RATCHET_*` context, collects its reports
(in process through a callback; otherwise by following the JSON-lines report
file as it grows), passes each to `on_report` (which may stop the job, as
tuning's pruners do), writes them to a tracking run, keeps the logs, and
records the finished job as one `TrainingJob` execution: state (COMPLETE,
FAILED, FAILED_OBJECTIVE, STOPPED), exit code, reason, logs, inputs and the
model folder as output. A crashing script ends FAILED with its traceback in
its logs; it never takes the launcher down.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidArgument
from ratchet.metadata import (
    Artifact,
    Context,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.rows import to_datetime
from ratchet.tracking.tracker import Run
from ratchet.training.contract import (
    FAILED_OBJECTIVE,
    STOPPED,
    ObjectiveFailed,
    TrainingContext,
    TrialStopped,
    format_hyperparameters,
    running,
)

JOB = "TrainingJob"
MODEL = "Model"
COMPLETE, FAILED = "COMPLETE", "FAILED"
LAUNCHERS = ("inprocess", "process", "torchrun")
JOB_TYPES = (
    RecordType(
        Kind.EXECUTION,
        JOB,
        {
            "state": PropertyType.STRING,
            "launcher": PropertyType.STRING,
            "script": PropertyType.STRING,
            "exit_code": PropertyType.INT,
            "reason": PropertyType.STRING,
            "logs": PropertyType.STRING,
            "trial_id": PropertyType.STRING,
        },
    ),
    RecordType(Kind.ARTIFACT, MODEL, {"framework": PropertyType.STRING}),
)
_EXECUTION_STATE = {
    COMPLETE: ExecutionState.COMPLETE,
    FAILED: ExecutionState.FAILED,
    FAILED_OBJECTIVE: ExecutionState.FAILED,
    STOPPED: ExecutionState.CANCELED,
}
#: Answer to a report: True stops the job (tuning's early stopping).
OnReport = Callable[[int, dict[str, float]], bool | None]


@dataclass
class JobResult:
    state: str
    exit_code: int | None
    logs: Path
    model_dir: Path
    reason: str | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    execution_id: int | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """The last reported value of each metric."""
        last: dict[str, float] = {}
        for item in self.reports:
            last.update(item["metrics"])
        return last


class _Reports:
    """The job's reports as they come: kept, logged to the run, answered by `on_report`."""

    def __init__(
        self, on_report: OnReport | None, log: Callable[[int, dict[str, float]], None] | None
    ) -> None:
        self.items: list[dict[str, Any]] = []
        self.outcome: dict[str, Any] | None = None
        self.stop = False
        self._on_report, self._log = on_report, log

    def finish(self, metrics: dict[str, float]) -> None:
        """Final metrics returned, not reported: kept and logged, not judged for stopping."""
        step = self.items[-1]["step"] if self.items else 0
        self.items.append({"step": step, "time": time.time(), "metrics": metrics})
        if self._log is not None:
            self._log(step, metrics)

    def take(self, step: int, metrics: dict[str, float]) -> None:
        self.items.append({"step": step, "time": time.time(), "metrics": metrics})
        if self._log is not None:
            self._log(step, metrics)
        if self._on_report is not None and self._on_report(step, metrics):
            self.stop = True


def run_job(
    target: Callable[..., Any] | str | Path,
    hyperparameters: Mapping[str, Any],
    *,
    context: TrainingContext,
    launcher: str = "process",
    nproc: int = 2,
    store: MetadataStore | None = None,
    inputs: Mapping[str, Artifact] | None = None,
    on_report: OnReport | None = None,
    run: Run | None = None,
) -> JobResult:
    """Run `target` to the end and record it; every report goes to `run`'s time series.

    The run's TensorBoard writer (`run.enable_tensorboard()`) gets the same points.

    `target` is a callable (in process only), a `.py` script, or `module:NAME` for
    `python -m NAME`. `nproc` is the number of `torchrun` processes.
    """
    if launcher not in LAUNCHERS:
        raise InvalidArgument(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if callable(target) != (launcher == "inprocess"):
        raise InvalidArgument("a callable runs in process; a script runs as process or torchrun")
    model_dir = context.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    logs = model_dir.with_name(model_dir.name + ".log")
    started = time.time()
    log = None if run is None else _run_logger(run)
    reports = _Reports(on_report, log)
    if callable(target):
        state, code, reason = _in_process(target, hyperparameters, context, reports, logs)
        script = getattr(target, "__qualname__", repr(target))
    else:
        script = str(target)
        context = replace(
            context,
            report_file=model_dir.with_name(model_dir.name + ".reports.jsonl"),
            stop_file=model_dir.with_name(model_dir.name + ".stop"),
        )
        command = _command(script, hyperparameters, launcher, nproc)
        state, code, reason = _subprocess(command, context, reports, logs)
    result = JobResult(state, code, logs, model_dir, reason, reports.items)
    if store is not None:
        # The execution is associated with the run by id: the context as the run started
        # serves, without reading it back.
        run_context = None if run is None else run.context
        result.execution_id = record_job(
            store, result, launcher, script, context, inputs or {}, started, run_context
        )
    return result


def _run_logger(run: Run) -> Callable[[int, dict[str, float]], None]:
    def log(step: int, metrics: dict[str, float]) -> None:
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        if finite:
            run.log_time_series_metrics(finite, step=step)

    return log


def _in_process(
    target: Callable[..., Any],
    hyperparameters: Mapping[str, Any],
    context: TrainingContext,
    reports: _Reports,
    logs: Path,
) -> tuple[str, int | None, str | None]:
    def reporter(step: int, metrics: dict[str, float]) -> None:
        reports.take(step, metrics)
        if reports.stop:
            raise TrialStopped(f"stopped at step {step}")

    try:
        with running(context, reporter):
            returned = target(**hyperparameters)
        if isinstance(returned, Mapping):
            # A callable may return its final metrics instead of (or besides) reporting them.
            reports.finish({k: float(v) for k, v in returned.items()})
    except TrialStopped as e:
        return STOPPED, None, str(e)
    except ObjectiveFailed as e:
        logs.write_text(f"objective failed at step {e.step}: {e.reason}\n")
        return FAILED_OBJECTIVE, None, e.reason
    except Exception as e:  # the user's training code failed: the job fails, the caller goes on
        logs.write_text(traceback.format_exc())
        return FAILED, None, f"{type(e).__name__}: {e}"
    logs.write_text("")
    return COMPLETE, None, None


def _command(
    script: str, hyperparameters: Mapping[str, Any], launcher: str, nproc: int
) -> list[str]:
    program = ["-m", script.removeprefix("module:")] if script.startswith("module:") else [script]
    if launcher == "torchrun":
        if nproc < 1:
            raise InvalidArgument(f"nproc must be at least 1, got {nproc}")
        if program[0] == "-m":
            program = ["--module", program[1]]
        runner = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        return [
            *runner,
            f"--nproc-per-node={nproc}",
            *program,
            *format_hyperparameters(hyperparameters),
        ]
    return [sys.executable, *program, *format_hyperparameters(hyperparameters)]


def _subprocess(
    command: list[str], context: TrainingContext, reports: _Reports, logs: Path
) -> tuple[str, int | None, str | None]:
    assert context.report_file is not None and context.stop_file is not None
    for stale in (context.report_file, context.stop_file):
        stale.unlink(missing_ok=True)
    context.report_file.touch()
    env = {**os.environ, **context.to_env(), "PYTHONUNBUFFERED": "1"}
    with logs.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()
        follower = threading.Thread(
            target=_follow,
            args=(context.report_file, context.stop_file, reports, done),
            daemon=True,
        )
        follower.start()
        code = process.wait()
        done.set()
        follower.join()
    if reports.outcome is not None:
        return str(reports.outcome["outcome"]), code, str(reports.outcome.get("reason"))
    if code == 0:
        return COMPLETE, code, None
    tail = logs.read_text(errors="replace").strip().splitlines()[-1:] or [""]
    return FAILED, code, f"exit code {code}: {tail[0][:500]}"


def _follow(path: Path, stop_file: Path, reports: _Reports, done: threading.Event) -> None:
    """Read the report file as the script appends to it, until the script has exited."""
    with path.open() as f:
        pending = ""
        while True:
            finished = done.is_set()  # read once more after the exit: nothing is missed
            pending += f.read()
            *lines, pending = pending.split("\n")
            for line in lines:
                if not line.strip():
                    continue
                item = json.loads(line)
                if "outcome" in item:
                    reports.outcome = item
                    continue
                reports.take(int(item["step"]), {k: float(v) for k, v in item["metrics"].items()})
                if reports.stop and not stop_file.exists():
                    stop_file.touch()
            if finished:
                return
            done.wait(0.05)  # wakes at once when the script exits


def record_job(
    store: MetadataStore,
    result: JobResult,
    launcher: str,
    script: str,
    context: TrainingContext,
    inputs: Mapping[str, Artifact],
    started: float,
    run_context: Context | None,
) -> int:
    """The finished job as one `TrainingJob` execution (used by `run_job` with a store)."""
    for record_type in JOB_TYPES:
        store.put_type(record_type)
    properties: dict[str, Any] = {
        "state": result.state,
        "launcher": launcher,
        "script": script,
        "logs": str(result.logs),
    }
    if result.exit_code is not None:
        properties["exit_code"] = result.exit_code
    if result.reason:
        properties["reason"] = result.reason[:2000]
    if context.trial_id:
        properties["trial_id"] = context.trial_id
    outputs = {}
    if result.state == COMPLETE and any(result.model_dir.iterdir()):
        manifest = result.model_dir / "model.json"
        framework = json.loads(manifest.read_text())["framework"] if manifest.exists() else ""
        outputs["model"] = Artifact(
            MODEL,
            uri=str(result.model_dir),
            properties={"framework": framework},
            custom_properties={"metrics": result.metrics},
        )
    written = store.put_execution(
        Execution(
            JOB,
            state=_EXECUTION_STATE[result.state],
            properties=properties,
            custom_properties={"metrics": result.metrics},
            start_time=to_datetime(started),
            end_time=to_datetime(time.time()),
        ),
        inputs=inputs,
        outputs=outputs,
        contexts=[run_context] if run_context is not None else [],
    )
    assert written.execution.id is not None
    return written.execution.id
