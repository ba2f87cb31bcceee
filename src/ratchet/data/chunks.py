"""Raw chunks of a data source, and their conversion to the source's schema.

Owns the shape every reader produces (`Chunk`: a raw batch with the line or row
number of each row and the rows already known bad; `Raw`: a source's chunks) and
the conversion of a raw batch to the target schema, which sets aside the rows
whose values do not convert. Readers live in `io` (files) and `queries` (memory,
SQL, DuckDB).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ratchet.errors import InvalidArgument

CSV_NULLS = pa.array(pacsv.ConvertOptions().null_values, pa.string())


class Chunk(NamedTuple):
    batch: pa.RecordBatch  # raw columns, in the order of the target schema
    lines: np.ndarray[Any, Any]  # 1-based line (files) or row number (others) of each row
    file: str | None
    errors: dict[int, str]  # rows already known bad, by index in the batch


@dataclass
class Raw:
    schema: pa.Schema | None  # before `columns=`; None: the first chunk's
    chunks: Iterator[Chunk]
    invalid: list[dict[str, Any]] = field(default_factory=list)  # wrong field counts
    csv_text: bool = False  # raw columns are CSV text: CSV null markers mean null


def target_schema(inferred: pa.Schema, columns: dict[str, Any], name: str) -> pa.Schema:
    if unknown := sorted(set(columns) - set(inferred.names)):
        raise InvalidArgument(f"columns= names {', '.join(unknown)}, which {name} does not have")
    return pa.schema(
        (f.name, columns.get(f.name, pa.string() if pa.types.is_null(f.type) else f.type))
        for f in inferred
    )


def convert(
    chunk: Chunk, schema: pa.Schema, csv_text: bool
) -> tuple[pa.RecordBatch, dict[int, str]]:
    """Cast a raw batch to the schema; rows that do not convert are left out and reported."""
    errors = dict(chunk.errors)
    arrays = []
    for i, target in enumerate(schema):
        column = chunk.batch.column(i)
        if csv_text and pa.types.is_string(column.type):
            # CSV null markers ("", NA, null, ...) are missing in every column, text too,
            # as pandas reads them; otherwise an empty text cell would count as a value.
            missing = pc.is_in(column, value_set=CSV_NULLS)
            column = pc.if_else(missing, pa.scalar(None, column.type), column)
        if column.type != target.type:
            column, failed = cast_column(column, target)
            for row, error in failed.items():
                errors.setdefault(row, error)
        arrays.append(column)
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if not errors:
        return batch, errors
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[list(errors)] = False
    return batch.filter(pa.array(keep)), errors


def cast_column(column: pa.Array, target: pa.Field) -> tuple[pa.Array, dict[int, str]]:
    try:
        return pc.cast(column, target.type), {}
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise InvalidArgument(
            f"column {target.name!r} cannot be converted from {column.type} to {target.type}"
        ) from e
    except pa.ArrowInvalid:
        pass
    failed = failing_rows(column, target.type, 0)
    mask = np.zeros(len(column), dtype=bool)
    mask[list(failed)] = True
    cleaned = pc.if_else(pa.array(mask), pa.scalar(None, column.type), column)
    errors = {row: f"column {target.name!r}: {error}" for row, error in failed.items()}
    return pc.cast(cleaned, target.type), errors


def failing_rows(column: pa.Array, target: pa.DataType, offset: int) -> dict[int, str]:
    """Rows whose value does not cast, by bisection: about 2·k·log(n/k) casts for k bad rows."""
    try:
        pc.cast(column, target)
        return {}
    except pa.ArrowInvalid as e:
        if len(column) == 1:
            return {offset: first_line(e)}
    half = len(column) // 2
    return failing_rows(column.slice(0, half), target, offset) | failing_rows(
        column.slice(half), target, offset + half
    )


def rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches into batches of exactly `size` rows, the last one shorter."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            whole = pa.concat_batches(pending) if len(pending) > 1 else pending[0]
            yield whole.slice(0, size)
            rest = whole.slice(size)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        yield pa.concat_batches(pending) if len(pending) > 1 else pending[0]


def first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
