"""In-memory, SQLAlchemy and DuckDB sources, read as raw chunks.

Owns turning a pandas DataFrame, an Arrow table, a SQL query through SQLAlchemy
(streamed with `yield_per`) or a DuckDB query into `Chunk`s; values of a mixed
Python column that do not fit its type are marked bad, not dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from ratchet.data.chunks import Chunk, Raw, first_line
from ratchet.errors import InvalidArgument, NotFound


def memory_raw(source: pd.DataFrame | pa.Table | pa.RecordBatch, batch_rows: int) -> Raw:
    def chunks() -> Iterator[Chunk]:
        if isinstance(source, pd.DataFrame):
            slices = (source.iloc[i : i + batch_rows] for i in range(0, len(source), batch_rows))
            pieces: Iterator[tuple[pa.RecordBatch, dict[int, str]]] = map(from_pandas, slices)
        else:
            batches = arrow_table(source).to_batches(max_chunksize=batch_rows)
            pieces = ((batch, {}) for batch in batches)
        start = 1
        for batch, errors in pieces:
            if batch.num_rows:
                yield Chunk(batch, np.arange(start, start + batch.num_rows), None, errors)
                start += batch.num_rows

    return Raw(schema=None, chunks=chunks())


def arrow_table(source: pd.DataFrame | pa.Table | pa.RecordBatch) -> pa.Table:
    if isinstance(source, pd.DataFrame):
        return pa.Table.from_pandas(source, preserve_index=False)
    return pa.Table.from_batches([source]) if isinstance(source, pa.RecordBatch) else source


def from_pandas(frame: pd.DataFrame) -> tuple[pa.RecordBatch, dict[int, str]]:
    try:
        return pa.RecordBatch.from_pandas(frame, preserve_index=False), {}
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        names = [str(c) for c in frame.columns]
        return from_python(names, [frame[c].tolist() for c in frame.columns])


def from_python(
    names: list[str], columns: list[list[Any]]
) -> tuple[pa.RecordBatch, dict[int, str]]:
    """Python values to Arrow; in a column of mixed types, values unlike the first go bad."""
    arrays: list[pa.Array] = []
    errors: dict[int, str] = {}
    for name, values in zip(names, columns, strict=True):
        try:
            arrays.append(pa.array(values))
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
        kind = pa.array([next(v for v in values if v is not None)]).type
        clean: list[Any] = []
        for i, value in enumerate(values):
            try:
                pa.array([value], type=kind)
                clean.append(value)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                errors.setdefault(i, f"column {name!r}: {value!r} is not {kind}")
                clean.append(None)
        arrays.append(pa.array(clean, type=kind))
    return pa.RecordBatch.from_arrays(arrays, names=names), errors


def sql_name(url: str) -> str:
    try:
        return str(sa.engine.make_url(url).render_as_string(hide_password=True))
    except sa.exc.ArgumentError as e:
        raise InvalidArgument(f"{url} is not a database URL: {first_line(e)}") from e


def sql_raw(url: str, query: str, batch_rows: int) -> Raw:
    parsed = sa.engine.make_url(url)
    database = parsed.database
    sqlite = parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if sqlite and not Path(str(database)).is_file():
        raise NotFound(f"SQLite database {database} does not exist")

    def chunks() -> Iterator[Chunk]:
        start = 1
        try:
            engine = sa.create_engine(url)
        except (sa.exc.SQLAlchemyError, ImportError) as e:
            raise InvalidArgument(f"cannot open {sql_name(url)}: {first_line(e)}") from e
        try:
            with engine.connect() as connection:
                options = connection.execution_options(yield_per=batch_rows)
                result = options.execute(sa.text(query))
                names = list(result.keys())
                for part in result.partitions():
                    batch, errors = from_python(names, [list(c) for c in zip(*part, strict=True)])
                    yield Chunk(batch, np.arange(start, start + len(part)), None, errors)
                    start += len(part)
        except sa.exc.SQLAlchemyError as e:
            raise InvalidArgument(f"query failed on {sql_name(url)}: {first_line(e)}") from e
        finally:
            engine.dispose()

    return Raw(schema=None, chunks=chunks())


def duckdb_raw(
    query: str,
    batch_rows: int,
    *,
    table: pa.Table | None = None,
    files: tuple[list[Path], str] | None = None,
) -> Raw:
    def chunks() -> Iterator[Chunk]:
        start = 1
        with duckdb.connect() as con:
            try:
                if table is not None:
                    con.register("source", table)
                if files is not None:
                    paths = [str(f) for f in files[0]]
                    view = con.read_parquet(paths) if files[1] == "parquet" else con.read_csv(paths)  # type: ignore[arg-type]
                    view.create_view("source")
                relation = con.sql(query)
                if relation is None:
                    raise InvalidArgument(f"query returned no result set: {query}")
                for batch in relation.to_arrow_reader(batch_rows):
                    if batch.num_rows:
                        yield Chunk(batch, np.arange(start, start + batch.num_rows), None, {})
                        start += batch.num_rows
            except (duckdb.Error, pa.ArrowException) as e:
                raise InvalidArgument(f"query failed: {first_line(e)}") from e

    return Raw(schema=None, chunks=chunks())
