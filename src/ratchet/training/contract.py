"""The training-script contract: hyperparameters in, context from the environment, reports out.

A training script (or a Python callable) is the same thing for tuning and for
full training. It gets its hyperparameters as command-line arguments
(`--learning_rate 0.01 --layers 3`; `parse_hyperparameters` reads them) or, as a
callable, as keyword arguments; it gets its context (model dir, TensorBoard dir,
dataset, run and trial ids) from `RATCHET_*` environment variables (`context()`);
and it reports metrics with `report(step=..., **metrics)`. Reports go to whoever
launched it: a callback in process, a JSON-lines file for a subprocess or
`torchrun` job (rank 0 only). A report can stop the script: when the launcher
decides a trial is not worth finishing, `report` raises `TrialStopped`.

It does not launch anything (`jobs`) or train anything (`loop`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ratchet.config import Config
from ratchet.errors import InvalidArgument

ENV = {
    "model_dir": "RATCHET_MODEL_DIR",
    "tensorboard_dir": "RATCHET_TENSORBOARD_DIR",
    "dataset": "RATCHET_DATASET",
    "run_id": "RATCHET_RUN_ID",
    "trial_id": "RATCHET_TRIAL_ID",
    "report_file": "RATCHET_REPORT_FILE",
    "stop_file": "RATCHET_STOP_FILE",
}
#: The outcome a script's run can end with, besides finishing or crashing.
FAILED_OBJECTIVE, STOPPED = "FAILED_OBJECTIVE", "STOPPED"


class TrialStopped(Exception):
    """Raised by `report` when the launcher stopped this trial (early stopping by the tuner)."""


class ObjectiveFailed(Exception):
    """Training cannot reach its objective (NaN loss, divergence, step budget spent)."""

    def __init__(self, reason: str, *, step: int) -> None:
        super().__init__(reason)
        self.reason, self.step = reason, step


@dataclass(frozen=True)
class TrainingContext:
    """Where a training run writes and what it trains on; passed as `RATCHET_*` variables."""

    model_dir: Path
    tensorboard_dir: Path | None = None
    dataset: str | None = None  # a prepared dataset folder (or a dataset version's folder)
    run_id: str | None = None
    trial_id: str | None = None
    report_file: Path | None = None
    stop_file: Path | None = None
    stores: Config | None = None  # the stores a script opens (hub weights): RATCHET_HOME etc.

    def to_env(self) -> dict[str, str]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name in ENV}
        env = {ENV[name]: str(value) for name, value in values.items() if value is not None}
        if self.stores is not None:
            env.update(self.stores.to_env())
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainingContext:
        env = os.environ if env is None else env
        values: dict[str, Any] = {name: env.get(var) for name, var in ENV.items()}
        if not values["model_dir"]:
            values["model_dir"] = "model"
        for name in ("model_dir", "tensorboard_dir", "report_file", "stop_file"):
            if values[name]:
                values[name] = Path(values[name])
        return cls(**values)


Reporter = Callable[[int, dict[str, float]], None]
_reporter: ContextVar[Reporter | None] = ContextVar("ratchet_reporter", default=None)
_context: ContextVar[TrainingContext | None] = ContextVar("ratchet_context", default=None)


def context() -> TrainingContext:
    """This run's context: the launcher's (in process) or the environment's."""
    return _context.get() or TrainingContext.from_env()


@contextlib.contextmanager
def running(training: TrainingContext, reporter: Reporter) -> Iterator[None]:
    """Run a callable in process with this context and reporter (used by `jobs`)."""
    context_token, reporter_token = _context.set(training), _reporter.set(reporter)
    try:
        yield
    finally:
        _context.reset(context_token)
        _reporter.reset(reporter_token)


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


class FileReporter:
    """Appends reports as JSON lines; raises `TrialStopped` once the stop file exists."""

    def __init__(self, path: Path, stop_file: Path | None = None) -> None:
        self.path, self.stop_file = path, stop_file

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        if _is_rank_zero():
            write_line(self.path, {"step": step, "time": time.time(), "metrics": metrics})
        if self.stop_file is not None and self.stop_file.exists():
            raise TrialStopped(f"stopped by the launcher at step {step}")


def write_line(path: Path, record: Mapping[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, allow_nan=True) + "\n")


def report(step: int, **metrics: float) -> None:
    """Report metrics at a step (intermediate or final); may raise `TrialStopped`."""
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise InvalidArgument(f"step must be a non-negative int, got {step!r}")
    values = {}
    for name, value in metrics.items():
        try:
            values[name] = float(value)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"metric {name!r} must be a number, got {value!r}") from e
    reporter = _reporter.get()
    if reporter is None:
        training = TrainingContext.from_env()
        if training.report_file is None:
            return  # run by hand, outside any launcher: nobody to tell
        reporter = FileReporter(training.report_file, training.stop_file)
    reporter(step, values)


def record_outcome(outcome: str, reason: str, *, step: int) -> None:
    """Tell a subprocess launcher how the script ended (failed objective, stopped)."""
    training = context()
    if training.report_file is not None and _is_rank_zero():
        write_line(training.report_file, {"outcome": outcome, "reason": reason, "step": step})


def parse_hyperparameters(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """`--name value`, `--name=value` and bare `--flag` (True); JSON values where they parse."""
    args = list(sys.argv[1:] if argv is None else argv)
    values: dict[str, Any] = {}
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or len(arg) < 3:
            raise InvalidArgument(f"hyperparameters are --name value pairs, got {arg!r}")
        name, has_value, text = arg[2:].partition("=")
        if not has_value:
            text = args.pop(0) if args and not args[0].startswith("--") else "true"
        try:
            values[name.replace("-", "_")] = json.loads(text)
        except json.JSONDecodeError:
            values[name.replace("-", "_")] = text
    return values


def format_hyperparameters(values: Mapping[str, Any]) -> list[str]:
    """The command-line form of `values`, read back unchanged by `parse_hyperparameters`."""
    args = []
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += [f"--{name}", text]
    return args
