"""Optuna studies kept in the metadata store, as a journal of operations in one table.

Owns `SqlJournalBackend`, Optuna's append-only journal held in the `tuning_journal`
table of the metadata store (the same SQLite file or PostgreSQL URL), and
`open_storage`, which puts Optuna's `JournalStorage` on top of it. Every process on
every machine replays the same log in the same order, which is how they agree on
trial numbers and on who runs a trial enqueued for anyone (the first RUNNING log for
it wins). The journal costs one small insert per operation where Optuna's RDB storage
updates several tables.

It does not own studies, samplers, pruners or what to do with failed trials
(`ratchet.tuning`), nor the table's shape (`metadata.schema`, migration 0002).

A worker that dies leaves its trial RUNNING: the journal has no heartbeat, so Optuna's
`fail_stale_trials` does nothing here. Whoever knows the worker is gone (a resume after
a crash, a supervisor) tells the trial FAIL and may enqueue its parameters again. Any
process may do so; if the worker was only slow, its later writes to the trial are refused.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages.journal import BaseJournalBackend, JournalStorage

from ratchet.errors import InvalidArgument, StoreError
from ratchet.metadata import database, schema

__all__ = ["SqlJournalBackend", "open_storage"]

# Any constant works as long as every ratchet process uses the same one; it differs
# from the migration lock's key so that appending never waits for a migration's lock.
_PG_JOURNAL_LOCK = 0x726174746A
_JOURNAL = schema.tuning_journal
# Numbering inside the insert saves a round trip per append. Each row is its own statement
# run after the lock is held, so it sees the rows before it, this transaction's included.
_APPEND = sa.insert(_JOURNAL).from_select(
    ["seq", "log"],
    sa.select(
        sa.func.coalesce(sa.func.max(_JOURNAL.c.seq), -1) + 1,
        # PostgreSQL cannot infer a parameter's type from a select list.
        sa.cast(sa.bindparam("log"), sa.Text),
    ),
)


class SqlJournalBackend(BaseJournalBackend):
    """Optuna's journal in the metadata store's `tuning_journal` table, numbered densely.

    Safe to share between threads, processes and machines: appends are serialised by
    the database (SQLite's write lock, a PostgreSQL advisory lock), so log numbers have
    no gaps and follow commit order, which Optuna's replay needs. Opening applies
    pending schema migrations, as opening a `MetadataStore` does.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._open()

    def _open(self) -> None:
        self._engine = _open_engine(self, self.url)
        dialect = self._engine.dialect
        # Compiled once: Optuna reads before nearly every operation, mostly finding nothing
        # new, and SQLAlchemy's execution layer would cost several times the read itself.
        self._read = database.DriverStatement(_READ, dialect)
        self._append = database.DriverStatement(_APPEND, dialect)
        self._lock = database.DriverStatement(_LOCK, dialect)

    def close(self) -> None:
        """Release the connections; a closed backend reconnects if used again."""
        self._engine.dispose()

    # Optuna pickles storages to hand them to other processes; an engine cannot travel,
    # so the copy opens its own on the same URL.
    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]
        self._open()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append `logs` after the last log, in one transaction that holds the write lock."""
        if not logs:
            return
        try:
            texts = [json.dumps(log, separators=(",", ":")) for log in logs]
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"tuning journal entries must be JSON values: {e}") from e
        # On SQLite a write transaction is BEGIN IMMEDIATE: the write lock is taken before
        # max(seq) is read, so two writers cannot both number from the same maximum.
        with database.driver_transaction(self._engine, self.url, write=True) as connection:
            if self._engine.dialect.name == "postgresql":
                # Row locks cannot guard rows that do not exist yet, so appenders queue
                # on one advisory lock. It is released at commit, after the rows become
                # visible, and under READ COMMITTED (PostgreSQL's default) the next
                # statement sees them: the following writer numbers after them. (A
                # stricter default isolation would read a stale maximum; the primary
                # key then fails the append rather than number a log twice.)
                self._lock.fetch_all(connection, {"key": _PG_JOURNAL_LOCK})
            self._append.execute_many(connection, [{"log": text} for text in texts])

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        """The logs numbered `log_number_from` and up, in order."""
        with database.driver_transaction(self._engine, self.url, write=False) as connection:
            rows = self._read.fetch_all(connection, {"first": log_number_from})
        logs = []
        for expected, (seq, text) in enumerate(rows, start=log_number_from):
            # Optuna numbers what it has read by counting logs; past a hole every later log
            # would be misnumbered and its trials silently wrong, so refuse instead.
            if seq != expected:
                raise StoreError(
                    f"tuning journal in {database.display_url(self.url)} has no log {expected} "
                    f"(next is {seq}); it was edited outside ratchet"
                )
            logs.append(json.loads(text))
        return logs


_READ = (
    sa.select(_JOURNAL.c.seq, _JOURNAL.c.log)
    .where(_JOURNAL.c.seq >= sa.bindparam("first"))
    .order_by(_JOURNAL.c.seq)
)
_LOCK = sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger)))


def _open_engine(owner: SqlJournalBackend, url: str) -> sa.Engine:
    engine = database.create_engine(url)
    try:
        database.migrate(engine, url)
    except BaseException:
        engine.dispose()
        raise
    # Storages are usually dropped rather than closed (Optuna's own have no close); this
    # closes their connections when they go, instead of leaving it to the driver's warning.
    weakref.finalize(owner, engine.dispose)
    return engine


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna storage for studies kept in the metadata store at `url`, migrating it if needed.

    Pass it as `storage=` to `optuna.create_study` / `optuna.load_study`. Each call
    replays the whole journal once, then reads only what other processes append.
    """
    return JournalStorage(SqlJournalBackend(url))
