"""`Tracker` and `Run`: experiments and runs as contexts in the metadata store.

Owns what tracking records: an experiment is an `Experiment` context, a run an
`ExperimentRun` context whose parent is its experiment; parameters and summary
metrics are the run's custom properties (`param.*`, `metric.*`); time series go
through `MetricBuffer`; files a run logs become artifacts attributed to it, so
lineage reaches them. The module-level, Vertex-AI-shaped functions live in
`ratchet.tracking`; tables for people in `frames`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ratchet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ratchet.metadata import (
    Artifact,
    Context,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.query import RecordFilter
from ratchet.metadata.series import SeriesBlock
from ratchet.tracking import frames
from ratchet.tracking.buffer import MetricBuffer
from ratchet.tracking.tensorboard import TensorBoardWriters

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.artifacts import ArtifactStore

EXPERIMENT = "Experiment"
RUN = "ExperimentRun"
TENSORBOARD_LOGS = "TensorBoardLogs"
GENERIC_ARTIFACT = "Artifact"
PARAM = "param."
METRIC = "metric."
MAX_NAME = 128

TRACKING_TYPES = (
    RecordType(Kind.CONTEXT, EXPERIMENT, {"description": PropertyType.STRING}),
    RecordType(
        Kind.CONTEXT,
        RUN,
        {
            "experiment": PropertyType.STRING,
            "run_name": PropertyType.STRING,
            "state": PropertyType.STRING,
            "start_time": PropertyType.DOUBLE,
            "end_time": PropertyType.DOUBLE,
        },
    ),
    RecordType(Kind.ARTIFACT, TENSORBOARD_LOGS),
    RecordType(Kind.ARTIFACT, GENERIC_ARTIFACT),
)


class RunState(StrEnum):
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


def check_name(what: str, name: object) -> str:
    """A run or experiment name: non-empty text without '/', at most MAX_NAME characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"{what} name must be a non-empty string, got {name!r}")
    if "/" in name or len(name) > MAX_NAME:
        raise InvalidArgument(f"{what} name {name!r} must have no '/' and at most {MAX_NAME} chars")
    return name


def run_context_name(experiment: str, run: str) -> str:
    return f"{experiment}/{run}"


class Tracker:
    """Records the runs of one experiment into a metadata store.

    `run_root` is the folder under which each run gets a folder of its own (for
    TensorBoard event files); `artifacts` stores the files runs log.
    """

    def __init__(
        self,
        store: MetadataStore,
        experiment: str,
        *,
        description: str | None = None,
        run_root: Path | None = None,
        artifacts: ArtifactStore | None = None,
        buffer: MetricBuffer | None = None,
    ) -> None:
        check_name("experiment", experiment)
        self.store = store
        self.run_root = run_root
        self.artifacts = artifacts
        for record_type in TRACKING_TYPES:
            store.put_type(record_type)
        self.experiment = self._experiment(experiment, description)
        self._tensorboard = TensorBoardWriters()
        self._buffer = buffer or MetricBuffer(store, listener=self._tensorboard.write)

    def _experiment(self, name: str, description: str | None) -> Context:
        found = self.store.find_context(EXPERIMENT, name)
        if found is None:
            props = {"description": description} if description is not None else {}
            try:
                return self.store.put_context(Context(EXPERIMENT, name, properties=props))
            except AlreadyExists:  # another process created it a moment ago
                found = self.store.find_context(EXPERIMENT, name)
        if found is None:
            raise NotFound(f"experiment {name!r} vanished while it was being opened")
        return found

    def start_run(self, name: str, *, resume: bool = False, tensorboard: bool = False) -> Run:
        """Start a new run, or with `resume=True` continue an existing one."""
        check_name("run", name)
        experiment = self.experiment.name
        context_name = run_context_name(experiment, name)
        existing = self.store.find_context(RUN, context_name)
        now = time.time()
        if existing is not None and not resume:
            raise AlreadyExists(
                f"run {name!r} already exists in experiment {experiment!r}; "
                "pass resume=True to continue it"
            )
        if existing is None and resume:
            raise NotFound(f"no run {name!r} in experiment {experiment!r} to resume")
        if existing is None:
            props = {"experiment": experiment, "run_name": name, "state": RunState.RUNNING.value}
            context = self.store.put_context(
                Context(RUN, context_name, properties={**props, "start_time": now})
            )
            assert context.id is not None and self.experiment.id is not None
            self.store.put_parent_context(self.experiment.id, context.id)
            next_step = 0
        else:
            assert existing.id is not None
            self.store.set_properties(
                Kind.CONTEXT, existing.id, properties={"state": RunState.RUNNING.value}
            )
            context = self.store.get_context(existing.id)
            next_step = max(self.store.last_steps(existing.id).values(), default=-1) + 1
        run = Run(self, context, next_step=next_step)
        if tensorboard:
            run.enable_tensorboard()
        return run

    def get_run(self, name: str) -> Run:
        """An existing run of this experiment, to read; log to it after `start_run(resume=True)`."""
        context = self.store.find_context(RUN, run_context_name(self.experiment.name, name))
        if context is None:
            raise NotFound(f"no run {name!r} in experiment {self.experiment.name!r}")
        return Run(self, context, next_step=0)

    def get_experiment_df(self) -> pd.DataFrame:
        """One row per run: experiment_name, run_name, state, param.*, metric.*."""
        self.flush()
        return experiment_df(self.store, self.experiment.name)

    def flush(self) -> None:
        self._buffer.flush()

    def close(self) -> None:
        """Write what is buffered and close TensorBoard files; the store stays open."""
        self._buffer.close()
        self._tensorboard.close_all()


class Run:
    """One run: log parameters, summary metrics, time series and artifacts, then end it.

    Use it as a context manager to end it as COMPLETE, or FAILED when an exception escapes.
    """

    def __init__(self, tracker: Tracker, context: Context, *, next_step: int) -> None:
        assert context.id is not None
        self._tracker = tracker
        self.context = context
        self.id: int = context.id
        self.name = str(context.properties["run_name"])
        self.experiment = str(context.properties["experiment"])
        self.state = RunState(str(context.properties["state"]))
        self._next_step = next_step
        self.tensorboard_dir: Path | None = None

    def __repr__(self) -> str:
        return f"Run({self.experiment!r}/{self.name!r}, {self.state})"

    def _check_running(self) -> None:
        if self.state != RunState.RUNNING:
            raise FailedPrecondition(
                f"run {self.name!r} has ended ({self.state}); "
                "start_run(name, resume=True) to log to it again"
            )

    @property
    def folder(self) -> Path:
        if self._tracker.run_root is None:
            raise FailedPrecondition("this tracker has no run folder (run_root is not set)")
        return self._tracker.run_root / self.experiment / self.name

    def enable_tensorboard(self) -> Path:
        """Mirror this run's time series into TensorBoard event files; returns their folder."""
        self._check_running()
        logdir = self.folder / "tensorboard"
        self._tracker._tensorboard.open(self.id, logdir)
        if self.tensorboard_dir is None:
            logs = self._tracker.store.find_artifacts(type=TENSORBOARD_LOGS, uri=str(logdir))
            artifact = (
                logs[0]
                if logs
                else self._tracker.store.put_artifact(Artifact(TENSORBOARD_LOGS, uri=str(logdir)))
            )
            assert artifact.id is not None
            self._tracker.store.put_attribution(self.id, artifact.id)
        self.tensorboard_dir = logdir
        return logdir

    def log_params(self, params: Mapping[str, object]) -> None:
        """Record hyperparameters; values must be str, int, float or bool."""
        self._check_running()
        values = {}
        for key, value in _check_mapping("params", params).items():
            if not isinstance(value, str | int | float | bool):
                raise InvalidArgument(
                    f"parameter {key!r} must be a str, int, float or bool, "
                    f"not {type(value).__name__}"
                )
            values[PARAM + key] = value
        self._tracker.store.set_properties(Kind.CONTEXT, self.id, custom_properties=values)

    def log_metrics(self, metrics: Mapping[str, object]) -> None:
        """Record summary metrics (the last value of each wins); buffered."""
        self._check_running()
        self._tracker._buffer.set_summaries(self.id, _numbers("metric", metrics))

    def log_time_series_metrics(
        self, metrics: Mapping[str, object], step: int | None = None, wall_time: float | None = None
    ) -> None:
        """Record one point per metric at `step` (default: one past the last step); buffered."""
        self._check_running()
        if step is None:
            step = self._next_step
        elif not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise InvalidArgument(f"step must be a non-negative int, not {step!r}")
        self._next_step = max(self._next_step, step + 1)
        when = time.time() if wall_time is None else float(wall_time)
        values = _numbers("metric", metrics)
        if len(values) == 1:
            ((key, value),) = values.items()
            self._tracker._buffer.add_point((self.id, key, step, when, value))
        else:
            self._tracker._buffer.add_points(
                [(self.id, key, step, when, value) for key, value in values.items()]
            )

    def log_time_series_batch(
        self,
        metrics: Mapping[str, Sequence[float] | npt.ArrayLike],
        *,
        steps: Sequence[int] | npt.ArrayLike,
        wall_times: Sequence[float] | npt.ArrayLike | None = None,
    ) -> None:
        """Record many steps at once: `metrics` maps names to values aligned with `steps`."""
        self._check_running()
        step_array = np.asarray(steps)
        if step_array.ndim != 1 or (step_array.size and step_array.dtype.kind not in "iu"):
            raise InvalidArgument("steps must be a flat sequence of ints")
        if step_array.size and step_array.min() < 0:
            raise InvalidArgument("steps must be non-negative")
        if wall_times is None:
            wall_times = np.full(len(step_array), time.time())
        _check_mapping("metric", metrics)
        blocks = [
            SeriesBlock.of(self.id, name, step_array, wall_times, values)
            for name, values in metrics.items()
        ]
        if len(step_array):
            self._next_step = max(self._next_step, int(step_array.max()) + 1)
        self._tracker._buffer.add_blocks(blocks)

    def log_artifact(self, path: str | Path, *, type: str = GENERIC_ARTIFACT) -> Artifact:
        """Store a file or folder in the artifact store and attribute it to this run."""
        self._check_running()
        if self._tracker.artifacts is None:
            raise FailedPrecondition("this tracker has no artifact store")
        stored = self._tracker.artifacts.put(path)
        found = self._tracker.store.find_artifacts(type=type, sha256=stored.sha256)
        artifact = (
            found[0]
            if found
            else self._tracker.store.put_artifact(
                Artifact(
                    type,
                    uri=stored.uri,
                    sha256=stored.sha256,
                    custom_properties={"source": str(path), "size": stored.size},
                )
            )
        )
        assert artifact.id is not None
        self._tracker.store.put_attribution(self.id, artifact.id)
        return artifact

    def end(self, state: RunState | str = RunState.COMPLETE) -> None:
        """Write what is buffered and mark the run ended; ending twice is an error."""
        try:
            final = RunState(state)
        except ValueError as e:
            raise InvalidArgument(
                f"unknown run state {state!r}; use one of {list(RunState)}"
            ) from e
        if final == RunState.RUNNING:
            raise InvalidArgument("end a run with COMPLETE, FAILED or CANCELED")
        self._check_running()
        self._tracker.flush()
        self._tracker._tensorboard.close(self.id)
        self._tracker.store.set_properties(
            Kind.CONTEXT, self.id, properties={"state": final.value, "end_time": time.time()}
        )
        self.state = final

    def get_params(self) -> dict[str, object]:
        return self._prefixed(PARAM)

    def get_metrics(self) -> dict[str, object]:
        self._tracker.flush()
        return self._prefixed(METRIC)

    def _prefixed(self, prefix: str) -> dict[str, object]:
        custom = self._tracker.store.get_context(self.id).custom_properties
        return {k[len(prefix) :]: v for k, v in custom.items() if k.startswith(prefix)}

    def get_time_series_df(self) -> pd.DataFrame:
        """One row per step: step, wall_time, one column per metric."""
        self._tracker.flush()
        return frames.time_series_frame(self._tracker.store.read_time_series(self.id))

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state == RunState.RUNNING:
            self.end(RunState.COMPLETE if exc_type is None else RunState.FAILED)


def experiment_df(store: MetadataStore, name: str) -> pd.DataFrame:
    """One row per run of experiment `name`: experiment_name, run_name, state, param.*, metric.*."""
    experiment = store.find_context(EXPERIMENT, name)
    if experiment is None:
        raise NotFound(f"no experiment {name!r}")
    runs = store.find_properties(Kind.CONTEXT, RecordFilter(type=RUN, parent=experiment.id))
    return frames.experiment_frame(name, list(runs.values()))


def resolve_run(store: MetadataStore, ref: str) -> Context:
    """A run by context id, by "experiment/run", or by run name when only one experiment has it."""
    if ref.isdigit():
        context = store.get_context(int(ref))
        if context.type != RUN:
            raise NotFound(f"context {ref} is a {context.type}, not a run")
        return context
    if "/" in ref:
        found = store.find_context(RUN, ref)
        if found is None:
            raise NotFound(f"no run {ref!r}")
        return found
    matches = store.find_contexts(type=RUN, properties={"run_name": ref})
    if not matches:
        raise NotFound(f"no run named {ref!r}")
    if len(matches) > 1:
        experiments = ", ".join(sorted(str(m.properties["experiment"]) for m in matches))
        raise InvalidArgument(
            f"run {ref!r} exists in several experiments ({experiments}); write EXPERIMENT/{ref}"
        )
    return matches[0]


def delete_experiment(store: MetadataStore, name: str, *, run_root: Path | None = None) -> int:
    """Delete an experiment, its runs, their parameters, metrics and time series.

    Artifacts the runs logged stay (other records may use them); run folders under
    `run_root` go. Returns the number of runs deleted.
    """
    experiment = store.find_context(EXPERIMENT, name)
    if experiment is None or experiment.id is None:
        raise NotFound(f"no experiment {name!r}")
    runs = store.find_contexts(type=RUN, parent=experiment.id)
    store.delete_contexts([r.id for r in runs if r.id is not None] + [experiment.id])
    if run_root is not None:
        shutil.rmtree(run_root / name, ignore_errors=True)
    return len(runs)


def _check_mapping(what: str, values: Mapping[str, object]) -> Mapping[str, object]:
    if not isinstance(values, Mapping):
        raise InvalidArgument(
            f"{what} must be a mapping of names to values, not {type(values).__name__}"
        )
    for key in values:
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"{what} names must be non-empty strings, got {key!r}")
    return values


def _numbers(what: str, values: Mapping[str, object]) -> dict[str, float]:
    # The common case (a dict of str to float or int) takes one pass with exact type
    # checks: this runs on every logging call inside a training loop.
    if type(values) is not dict:
        _check_mapping(what, values)
    checked: dict[str, float] = {}
    for key, value in values.items():
        kind = type(value)
        if (kind is float or kind is int) and type(key) is str and key:
            checked[key] = value  # type: ignore[assignment]
            continue
        _check_mapping(what, {key: value})
        if isinstance(value, int | float) and not isinstance(value, bool):
            checked[key] = float(value)
        elif hasattr(value, "item") and not isinstance(value, bool):
            # numpy and torch scalars: take their Python value, still checked
            checked.update(_numbers(what, {key: value.item()}))
        else:
            raise InvalidArgument(f"{what} {key!r} must be a number, not {type(value).__name__}")
    return checked
