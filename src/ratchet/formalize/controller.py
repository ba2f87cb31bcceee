"""The continuous-training controller: notice new data, run a formalization pass, keep going.

Owns `watch`: it lists the files a SOURCE (folder or glob) holds, runs one pass
per file it has not passed yet (oldest name first), records each as a
`FormalizePass` execution (file, action, candidate, promoted), and polls again
after `interval` seconds. What counts as done is read back from the metadata
store, so a controller that crashed resumes with the first file without a
complete pass. One controller per store: the lock is an advisory lock held for
the controller's life (a lock file beside an embedded SQLite store; a PostgreSQL
session lock on a server store), so a second one fails at once with a clear error.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa

from ratchet.config import Config
from ratchet.errors import FailedPrecondition, NotFound
from ratchet.formalize.passes import PassResult, Settings, run_pass
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
        "dataset": PropertyType.STRING,
        "action": PropertyType.STRING,
        "candidate": PropertyType.STRING,
        "promoted": PropertyType.BOOL,
    },
)
_PG_CONTROLLER_LOCK = 0x72617463  # "ratc": one controller per PostgreSQL store


def source_files(source: str) -> list[Path]:
    """The data files a SOURCE holds now, in name order (a folder's CSV/Parquet, or a glob)."""
    path = Path(source)
    if path.is_dir():
        found = [p for p in path.iterdir() if p.suffix in (".csv", ".parquet", ".pq")]
    else:
        found = [Path(p) for p in glob.glob(source)]
    return sorted(p for p in found if p.is_file())


def passed_files(store: MetadataStore, name: str) -> set[str]:
    store.put_type(PASS_TYPE)
    done = store.find_executions(type=PASS, state=ExecutionState.COMPLETE.value)
    return {str(e.properties["file"]) for e in done if e.custom_properties.get("model") == name}


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
    source: str,
    settings: Settings,
    *,
    interval: float = 60.0,
    once: bool = False,
    say: Callable[[str], None] = print,
) -> list[PassResult]:
    """Pass every new file of `source`, then poll every `interval` s (or stop, with `once`)."""
    results: list[PassResult] = []
    with controller_lock(config):
        while True:
            with MetadataStore.from_config(config) as store:
                done = passed_files(store, settings.name)
            files = source_files(source)
            if not files and once:
                raise NotFound(f"no CSV or Parquet files in {source}")
            for file in files:
                if str(file) in done:
                    continue
                say(f"new data: {file}")
                started = time.time()
                result = run_pass(config, str(file), settings, say=say)
                _record(config, file, settings, result, started)
                results.append(result)
            if once:
                return results
            time.sleep(interval)


def _record(
    config: Config, file: Path, settings: Settings, result: PassResult, started: float
) -> None:
    with MetadataStore.from_config(config) as store:
        store.put_type(PASS_TYPE)
        store.put_execution(
            Execution(
                PASS,
                state=ExecutionState.COMPLETE,
                properties={
                    "file": str(file),
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
