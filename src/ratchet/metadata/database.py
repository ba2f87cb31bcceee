"""Opening the metadata database: engine settings, schema migrations, error translation.

Owns how a URL becomes a ready SQLAlchemy engine: SQLite in WAL mode with a busy
timeout and `BEGIN IMMEDIATE` for writes (so concurrent writers queue instead
of failing), PostgreSQL as given, and Alembic migrations applied forward under a
lock. It also turns driver exceptions into ratchet's errors, one line each.
Queries live in `store`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler

from ratchet.errors import AlreadyExists, NotFound, RatchetError, StoreError, StoreVersionError

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 60_000
WRITE_OPTION = "ratchet_write"
# Any constant works; it only has to be the same in every ratchet process.
_PG_MIGRATION_LOCK = 0x7261746368


def create_engine(url: str) -> sa.Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and immediate write transactions."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise StoreError(f"not a database URL: {url!r}") from e
    try:
        if parsed.get_backend_name() != "sqlite":
            return sa.create_engine(parsed, pool_pre_ping=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    except (sa.exc.ArgumentError, ImportError) as e:
        # An unknown dialect or a driver that is not installed.
        raise StoreError(f"cannot open {display_url(url)}: {str(e).splitlines()[0]}") from e

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite would otherwise open transactions itself; the "begin" hook does it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching a brand-new file to WAL takes a lock that
        # other processes opening it at the same moment must wait for, not fail on.
        for pragma in (
            f"busy_timeout={BUSY_TIMEOUT_MS}",
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        write = bool(conn.get_execution_options().get(WRITE_OPTION, False))
        conn.exec_driver_sql(_sqlite_begin(write=write))

    return engine


def _sqlite_begin(*, write: bool) -> str:
    # A deferred transaction that later writes can fail at once with SQLITE_BUSY in WAL
    # mode; taking the write lock up front makes concurrent writers wait their turn.
    return "BEGIN IMMEDIATE" if write else "BEGIN"


@contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """Turn database driver errors into one-line ratchet errors naming the store."""
    try:
        yield
    except RatchetError:
        raise
    except sa.exc.IntegrityError as e:
        raise AlreadyExists(f"conflicts with an existing record: {_first_line(e)}") from e
    except sa.exc.DBAPIError as e:
        message = _first_line(e)
        where = display_url(url)
        if "file is not a database" in message or "malformed" in message:
            raise StoreError(f"{where} is not a readable metadata store ({message})") from e
        if "database is locked" in message:
            raise StoreError(f"{where} stayed locked by another writer ({message})") from e
        raise StoreError(f"metadata store {where}: {message}") from e


def fetch_all(conn: sa.Connection, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Plain tuples from the driver's cursor, for reads of hundreds of thousands of rows.

    SQLAlchemy's Row objects cost as much as the read itself at that size; this runs the
    same compiled statement, in the same transaction, on the raw DBAPI cursor.
    """
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.cursor()
    try:
        cursor.execute(compiled.string, _driver_args(compiled, conn.dialect, None))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _driver_args(
    compiled: SQLCompiler, dialect: sa.Dialect, params: Mapping[str, Any] | None
) -> Any:
    """The parameters of a compiled statement in the form the driver takes them."""
    values = compiled.construct_params(params) or {}
    if dialect.positional:
        return tuple(values[name] for name in compiled.positiontup or ())
    return values


class DriverStatement:
    """A statement compiled once for an engine's dialect, run on the driver's connection.

    For the few statements run on every operation of something fast (the tuning
    journal's reads and appends, a dozen per trial; a record's insert, its
    properties' and the existence checks of links): SQLAlchemy's execution layer
    costs several times what SQLite takes to run a one-row statement. Run it on a
    `sa.Connection`'s `.connection` to stay in that connection's transaction.
    """

    def __init__(self, statement: sa.ClauseElement, dialect: sa.Dialect) -> None:
        self._compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self._dialect = dialect

    def fetch_all(self, connection: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with self._cursor(connection) as cursor:
            cursor.execute(
                self._compiled.string, _driver_args(self._compiled, self._dialect, params)
            )
            return list(cursor.fetchall())

    def execute_many(self, connection: Any, params: Sequence[Mapping[str, Any]]) -> None:
        with self._cursor(connection) as cursor:
            cursor.executemany(
                self._compiled.string,
                [_driver_args(self._compiled, self._dialect, p) for p in params],
            )

    @contextmanager
    def _cursor(self, connection: Any) -> Iterator[Any]:
        # The driver's errors are raised as SQLAlchemy raises them, so a caller's handlers
        # (`translated_errors`, an insert's IntegrityError) work the same on either path.
        error = self._dialect.loaded_dbapi.Error
        cursor = connection.cursor()
        try:
            yield cursor
        except error as e:
            raise sa.exc.DBAPIError.instance(self._compiled.string, None, e, error) from e
        finally:
            cursor.close()


_COMPILED: dict[tuple[Hashable, type[sa.Dialect], Any], DriverStatement] = {}
_COMPILING = threading.Lock()


def driver_statement(
    key: Hashable, dialect: sa.Dialect, build: Callable[[], sa.ClauseElement]
) -> DriverStatement:
    """`build()`'s statement as a `DriverStatement`, compiled once per kind of database.

    Keyed by `key` with the dialect's class and server version, not the dialect object:
    every engine of a kind compiles the same text, and a process that opens thousands of
    engines (a test suite) keeps one entry per statement and kind, not one per engine.
    """
    full = (key, type(dialect), dialect.server_version_info)
    found = _COMPILED.get(full)
    if found is None:
        with _COMPILING:
            found = _COMPILED.get(full) or DriverStatement(build(), dialect)
            _COMPILED[full] = found
    return found


def numbered_insert(table: sa.Table) -> sa.Insert:
    """An insert of one row of `table` that the database numbers: every column but `id`
    is a parameter (a column left out would be bound to None, and PostgreSQL refuses a
    null id rather than number the row)."""
    return table.insert().values({c.name: sa.bindparam(c.name) for c in table.columns
                                  if c.name != "id"})  # fmt: skip


@contextmanager
def driver_transaction(engine: sa.Engine, url: str, *, write: bool) -> Iterator[Any]:
    """A transaction on a pooled driver connection, for `DriverStatement`s.

    It follows the engine's rules (on SQLite a write transaction begins IMMEDIATE),
    commits when the block ends, rolls back if it raises, and translates the
    driver's errors as `translated_errors` does. A read (`write=False`) must be a
    single statement: on SQLite it runs as its own transaction, one statement where
    BEGIN, SELECT and COMMIT were three (the journal reads about ten times per trial).
    """
    with translated_errors(url):
        connection = engine.raw_connection()
        try:
            try:
                if engine.dialect.name == "sqlite" and write:
                    # The connect hook put pysqlite in autocommit: the transaction is ours.
                    cursor = connection.cursor()
                    cursor.execute(_sqlite_begin(write=write))
                    cursor.close()
                yield connection
                connection.commit()
            except engine.dialect.loaded_dbapi.Error as e:
                connection.rollback()
                raise sa.exc.DBAPIError.instance(
                    None, None, e, engine.dialect.loaded_dbapi.Error
                ) from e
            except BaseException:
                connection.rollback()
                raise
        finally:
            connection.close()


def insert_ignoring_duplicates(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]
) -> None:
    """Insert rows, skipping any that would violate a unique key (SQLite and PostgreSQL).

    Every row gives every column of `table`.
    """
    # Links (a run to its experiment, a job to its run) are written on every tracked
    # write: compiled once, on the driver's cursor, as a record's own insert is.
    dialect = conn.dialect
    dialect_insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = driver_statement(
        ("insert-ignoring", table.name), dialect,
        lambda: dialect_insert(table).on_conflict_do_nothing(),
    )  # fmt: skip
    statement.execute_many(conn.connection, rows)


def _first_line(error: sa.exc.DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig else str(error)


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _alembic_config(connection: sa.Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this version of ratchet knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise StoreError("ratchet was installed without its migrations")
    return head


def current_revision(conn: sa.Connection) -> str | None:
    """The schema revision recorded in the database, None for an empty database."""
    return MigrationContext.configure(conn).get_current_revision()


def check_revision(revision: str | None, url: str) -> None:
    """Refuse a store whose schema is newer than this code."""
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(_alembic_config()).get_revision(revision)
    except CommandError as e:
        raise StoreVersionError(
            f"metadata store {display_url(url)} is at schema revision {revision}, newer than "
            f"this ratchet knows ({head_revision()}); upgrade ratchet to use it"
        ) from e


def migrate(engine: sa.Engine, url: str) -> tuple[str | None, str]:
    """Bring the schema to head, forward only; returns (revision before, revision after).

    Concurrent openers serialise on a lock (SQLite's write lock, a PostgreSQL advisory
    lock) and re-read the revision inside it, so exactly one of them migrates.
    """
    head = head_revision()
    with translated_errors(url):
        with engine.connect() as conn:
            before = current_revision(conn)
            conn.rollback()
        check_revision(before, url)
        if before == head:
            return before, head
        with engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                    )
                before = current_revision(conn)
                check_revision(before, url)
                if before != head:
                    logger.info("migrating %s from %s to %s", display_url(url), before, head)
                    command.upgrade(_alembic_config(conn), "head")
    return before, head


def prepare_home(home: Path, *, create: bool) -> None:
    """Make sure RATCHET_HOME exists (when allowed) and is a writable folder."""
    if not home.exists():
        if not create:
            raise NotFound(
                f"no ratchet store at {home}; set RATCHET_HOME or record something first"
            )
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create RATCHET_HOME {home}: {e.strerror}") from e
    if not home.is_dir():
        raise StoreError(f"RATCHET_HOME {home} is not a folder")
    if not create and not (home / "metadata.db").exists():
        raise NotFound(f"no metadata store in {home}; set RATCHET_HOME or record something first")
    try:
        # os.access says yes to root even on read-only mounts; a real write does not lie.
        with tempfile.TemporaryFile(dir=home):
            pass
    except OSError as e:
        raise StoreError(f"RATCHET_HOME {home} is not writable: {e.strerror}") from e
