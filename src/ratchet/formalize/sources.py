"""What new batches a watched SOURCE holds: new files in a folder or glob, or new rows of a query.

Owns `Source` (the one question the controller asks: given the batches passed so
far, which new ones are there?), `FileSource` (a folder's CSV/Parquet files or a
glob; a file is new until a pass of it completed) and `SqlSource` (a query through
a SQLAlchemy URL; rows are new when their cursor column is above the highest value
a completed pass reached, and they are written as one Parquet batch file). Sources
never touch the metadata store: the controller (`controller`) reads back the
passed batches and records new ones, so a crashed controller resumes from what
the store holds. Reading a batch into a dataset version is the data pipeline's job.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from ratchet.data.chunks import first_line
from ratchet.data.queries import from_python, sql_name
from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".csv", ".parquet", ".pq")
_FETCH_ROWS = 10_000
# Cursor values go to the store as text tagged with their Python type, so the value
# bound in the next poll's `WHERE cursor > :after` compares as the column's own type.
# Each kind: its tag, the Python type the database returns, how to read the text back;
# datetime before date, since a datetime is a date.
_CURSOR_KINDS: tuple[tuple[str, type, Callable[[str], Any]], ...] = (
    ("int", int, int),
    ("float", float, float),
    ("decimal", Decimal, Decimal),
    ("datetime", datetime, datetime.fromisoformat),
    ("date", date, date.fromisoformat),
    ("str", str, str),
)


@dataclass(frozen=True)
class Batch:
    """One unit of new data: the file a pass reads, the source it came from, how far it reaches.

    `cursor` is the encoded highest cursor value of a SQL batch ("" for a file).
    """

    path: Path
    source: str
    cursor: str = ""


class Source(ABC):
    """A watched source of data."""

    @property
    @abstractmethod
    def key(self) -> str:
        """What names this source in the store's passes."""

    @abstractmethod
    def new_batches(self, passed: Sequence[Batch]) -> list[Batch]:
        """The batches to pass now, oldest first, given every batch passed so far (oldest first)."""


@dataclass(frozen=True)
class FileSource(Source):
    """A folder's CSV and Parquet files, or the files a glob matches; each file is one batch."""

    location: str

    @property
    def key(self) -> str:
        return self.location

    def files(self) -> list[Path]:
        """The data files the source holds now, in name order."""
        path = Path(self.location)
        if path.is_dir():
            found = [p for p in path.iterdir() if p.suffix in DATA_SUFFIXES]
        elif path.is_file() or glob.has_magic(self.location):
            found = [Path(p) for p in glob.glob(self.location)]
        else:
            # A glob may match nothing yet, but a plain path that names nothing is a mistake.
            raise NotFound(f"{self.location} does not exist")
        return sorted(p for p in found if p.is_file())

    def new_batches(self, passed: Sequence[Batch]) -> list[Batch]:
        done = {str(b.path) for b in passed}
        return [Batch(f, self.key) for f in self.files() if str(f) not in done]


@dataclass(frozen=True)
class SqlSource(Source):
    """The rows of `query` whose `cursor_column` is above the last passed value.

    The cursor belongs to the model, the database and the cursor column (`key`), not
    to the query's text, so a query can gain a column or a filter without starting
    over. The column must only grow (an autoincrement id, an insertion timestamp):
    a row committed later with a value at or below the cursor is never seen, and
    rows whose cursor is NULL are never passed. New rows are written to `folder`,
    without the cursor column.
    """

    url: str
    query: str
    _: KW_ONLY
    cursor_column: str
    folder: Path

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise InvalidArgument("the SQL query is empty")
        if not self.cursor_column.strip():
            raise InvalidArgument("the cursor column is empty")
        sql_name(self.url)  # a malformed URL fails here, before any poll

    @property
    def key(self) -> str:
        return f"{sql_name(self.url)}#{self.cursor_column}"

    def new_batches(self, passed: Sequence[Batch]) -> list[Batch]:
        mine = [b for b in passed if b.source == self.key and b.cursor]
        after = decode_cursor(mine[-1].cursor) if mine else None
        table, last = self._fetch(after)
        if table is None:
            return []
        # The cursor only grows, so as a feature it would drift on every batch and
        # make the policy retune each pass; a query that wants it selects it twice.
        table = table.drop_columns([self.cursor_column])
        # Named by how many batches of this source passed before: a controller that
        # crashed during a pass writes the retried batch over the same file.
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:8]
        path = self.folder / f"{digest}-{len(mine) + 1:06d}.parquet"
        write_atomically(table, path)
        logger.info("%d new row(s) from %s to %s", table.num_rows, sql_name(self.url), path)
        return [Batch(path, self.key, encode_cursor(last))]

    def _fetch(self, after: Any) -> tuple[pa.Table | None, Any]:
        """The new rows as one table and the highest cursor value among them (None: no rows)."""
        engine = self._engine()
        try:
            try:
                connection = engine.connect()
            except sa.exc.SQLAlchemyError as e:
                raise FailedPrecondition(
                    f"cannot connect to {sql_name(self.url)}: {first_line(e)}"
                ) from e
            with connection:
                return self._read(connection, after)
        finally:
            engine.dispose()

    def _read(self, connection: sa.Connection, after: Any) -> tuple[pa.Table | None, Any]:
        # The line break ends a trailing `-- comment` before it can swallow `) AS q`.
        inner = self.query.strip().rstrip(";") + "\n"
        column = connection.dialect.identifier_preparer.quote(self.cursor_column)
        try:
            # An empty probe first, so a missing column is named instead of a SQL error.
            probe = sa.text(f"SELECT * FROM ({inner}) AS q WHERE 1 = 0")
            names = list(connection.execute(probe).keys())
            if self.cursor_column not in names:
                raise InvalidArgument(
                    f"the query returns no column {self.cursor_column!r} to use as the cursor; "
                    f"it returns {names}"
                )
            where = f"{column} > :after" if after is not None else f"{column} IS NOT NULL"
            result = connection.execution_options(yield_per=_FETCH_ROWS).execute(
                sa.text(f"SELECT * FROM ({inner}) AS q WHERE {where} ORDER BY {column}"),
                {"after": after} if after is not None else {},
            )
            return _collect(result, names.index(self.cursor_column))
        except sa.exc.SQLAlchemyError as e:
            raise InvalidArgument(f"query failed on {sql_name(self.url)}: {first_line(e)}") from e

    def _engine(self) -> sa.Engine:
        parsed = sa.engine.make_url(self.url)
        database = parsed.database or ""
        # SQLite would create an empty database file, then report a missing table.
        sqlite_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        if sqlite_file and not Path(database).is_file():
            raise NotFound(f"SQLite database {database} does not exist")
        try:
            return sa.create_engine(self.url)
        except (sa.exc.SQLAlchemyError, ImportError) as e:
            raise InvalidArgument(f"cannot open {sql_name(self.url)}: {first_line(e)}") from e


def _collect(result: sa.CursorResult[Any], cursor_index: int) -> tuple[pa.Table | None, Any]:
    names = list(result.keys())
    tables: list[pa.Table] = []
    last: Any = None
    for part in result.partitions():
        batch, errors = from_python(names, [list(c) for c in zip(*part, strict=True)])
        if errors:
            # Only SQLite lets a column mix types; such values cannot be stored in the
            # batch's typed column, and the warning keeps the loss visible.
            logger.warning(
                "%d value(s) unlike their column's type read as null; first: %s",
                len(errors),
                next(iter(errors.values())),
            )
        tables.append(pa.Table.from_batches([batch]))
        last = part[-1][cursor_index]
    if not tables:
        return None, None
    try:
        # A column can be all NULL in one partition and typed in the next.
        return pa.concat_tables(tables, promote_options="permissive"), last
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidArgument(f"a column's values change type between rows: {first_line(e)}") from e


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write `table` as Parquet at `path`, so that a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def encode_cursor(value: Any) -> str:
    """A cursor value as `kind:text`, for a string property in the store."""
    for kind, python_type, _ in _CURSOR_KINDS:
        if isinstance(value, python_type) and not isinstance(value, bool):
            text = value.isoformat() if isinstance(value, date) else str(value)
            return f"{kind}:{text}"
    raise InvalidArgument(
        f"a cursor column must hold numbers, text, dates or timestamps, not {type(value).__name__}"
    )


def decode_cursor(encoded: str) -> Any:
    """The value `encode_cursor` wrote."""
    tag, _, text = encoded.partition(":")
    for kind, _, read in _CURSOR_KINDS:
        if kind == tag:
            return read(text)
    raise InvalidArgument(f"cannot read the recorded cursor {encoded!r}")
