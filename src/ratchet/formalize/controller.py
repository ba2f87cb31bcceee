"""The continuous-training controller: notice new data, run a formalization pass, keep going.

Owns `watch`: it asks a source (`ratchet.formalize.sources`: a folder or glob, or
a SQL query) for its new batches, runs one pass per batch (oldest first), records
each as a `FormalizePass` execution (file, source, cursor, action, candidate,
promoted), and polls again on its schedule (`Every` so many seconds, or a `Cron`
expression). What was passed is read back from the metadata store, so a
controller that crashed resumes with the first batch without a complete pass.
One controller per store: the lock is an advisory lock held for the controller's
life (a lock file beside an embedded SQLite store; a PostgreSQL session lock on a
server store), so a second one fails at once with a clear error.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from cronsim import CronSim, CronSimError

from ratchet.config import Config
from ratchet.errors import FailedPrecondition, InvalidArgument, RatchetError
from ratchet.formalize.passes import PassResult, Settings, run_pass
from ratchet.formalize.sources import Batch, FileSource, Source
from ratchet.metadata import (
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.rows import to_datetime

PASS = "FormalizePass"
PASS_TYPE = RecordType(
    Kind.EXECUTION,
    PASS,
    {
        "file": PropertyType.STRING,
        "source": PropertyType.STRING,
        "cursor": PropertyType.STRING,
        "dataset": PropertyType.STRING,
        "action": PropertyType.STRING,
        "candidate": PropertyType.STRING,
        "promoted": PropertyType.BOOL,
    },
)
_PG_CONTROLLER_LOCK = 0x72617463  # "ratc": one controller per PostgreSQL store
logger = logging.getLogger(__name__)
Say = Callable[[str], None]


class Schedule(Protocol):
    """When the controller polls its source again, after a poll that ended at `now`.

    Whatever the schedule, the controller also polls once at start, so a restarted
    controller resumes at once and a bad source is reported at once, not at the
    first scheduled time.
    """

    def next_run(self, now: datetime) -> datetime: ...


@dataclass(frozen=True)
class Every:
    """Poll `seconds` after the previous poll (and its passes) finished."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise InvalidArgument(f"the interval must be positive seconds, got {self.seconds}")

    def next_run(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Cron:
    """Poll at the times a cron expression names, read in UTC as Airflow and Dagster do.

    Five fields, or six with seconds first. Times missed while a pass ran are
    skipped, not caught up: the next poll sees all the new data anyway.
    """

    expression: str

    def __post_init__(self) -> None:
        try:
            next(CronSim(self.expression, datetime.now(UTC)))
        except (CronSimError, StopIteration) as e:
            raise InvalidArgument(
                f"invalid cron expression {self.expression!r}: {str(e) or 'it never fires'}"
            ) from None

    def next_run(self, now: datetime) -> datetime:
        return next(CronSim(self.expression, now.astimezone(UTC)))


class Run(Protocol):
    """A formalization pass over one file: `run_pass`, or a stand-in in tests."""

    def __call__(
        self, config: Config, source: str, settings: Settings, *, say: Say
    ) -> PassResult: ...


def passed_batches(store: MetadataStore, name: str) -> list[Batch]:
    """The batches with a complete pass for the model `name`, oldest first."""
    store.put_type(PASS_TYPE)
    done = store.find_executions(
        type=PASS, state=ExecutionState.COMPLETE.value, custom_properties={"model": name}
    )
    return [
        Batch(
            Path(str(e.properties["file"])),
            str(e.properties.get("source", "")),
            str(e.properties.get("cursor", "")),
        )
        for e in done
    ]


@contextlib.contextmanager
def controller_lock(config: Config) -> Iterator[None]:
    """Hold the one-controller-per-store lock, or fail at once naming the reason."""
    if config.db_url.startswith("postgresql"):
        engine = sa.create_engine(config.db_url)
        try:
            with engine.connect() as conn:
                held = conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _PG_CONTROLLER_LOCK}
                ).scalar()
                if not held:
                    raise FailedPrecondition("another controller is running on this store")
                try:
                    yield
                finally:
                    conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_CONTROLLER_LOCK}
                    )
        finally:
            engine.dispose()
        return
    config.home.mkdir(parents=True, exist_ok=True)
    with (config.home / "controller.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FailedPrecondition(
                f"another controller is running on the store in {config.home}"
            ) from None
        yield


def watch(
    config: Config,
    source: Source | str,
    settings: Settings,
    *,
    schedule: Schedule = Every(60.0),
    once: bool = False,
    say: Say = print,
    run: Run = run_pass,
) -> list[PassResult]:
    """Pass every new batch of `source` (a `Source`, or a folder or glob), then poll on `schedule`.

    With `once`, pass what is new now and stop. A failing first poll raises (a bad
    source is a mistake to report at once); a later one is logged and retried at
    the next poll, so a database restarting does not stop the controller.
    """
    watched = FileSource(source) if isinstance(source, str) else source
    results: list[PassResult] = []
    with controller_lock(config):
        polls = 0
        while True:
            with MetadataStore.from_config(config) as store:
                passed = passed_batches(store, settings.name)
            try:
                batches = watched.new_batches(passed)
            except RatchetError as e:
                if polls == 0:
                    raise
                logger.warning(
                    "polling %s failed, trying again at the next poll: %s", watched.key, e
                )
                batches = []
            polls += 1
            for batch in batches:
                say(f"new data: {batch.path}")
                started = time.time()
                result = run(config, str(batch.path), settings, say=say)
                _record(config, batch, settings, result, started)
                results.append(result)
            if once:
                return results
            now = datetime.now(UTC)
            time.sleep(max(0.0, (schedule.next_run(now) - now).total_seconds()))


def _record(
    config: Config, batch: Batch, settings: Settings, result: PassResult, started: float
) -> None:
    with MetadataStore.from_config(config) as store:
        store.put_type(PASS_TYPE)
        store.put_execution(
            Execution(
                PASS,
                state=ExecutionState.COMPLETE,
                properties={
                    "file": str(batch.path),
                    "source": batch.source,
                    "cursor": batch.cursor,
                    "dataset": str(result.dataset.name),
                    "action": result.decision.action.value,
                    "candidate": str(result.candidate or ""),
                    "promoted": result.promoted,
                },
                custom_properties={"model": settings.name, "reasons": list(result.reasons)},
                start_time=to_datetime(started),
                end_time=to_datetime(time.time()),
            ),
            inputs={"dataset": result.dataset},
        )
