"""Deterministic splits: which rows go to train, validation and test.

Owns a stable row hash (the same on every process, machine and engine: it
depends only on the values, never on Python's per-process hash seed or a
library's version) and the assignment of rows to splits by hash or by time.
Everything is vectorized over an Arrow record batch.

The hash of a value: int and float values as their 64-bit little-endian bytes,
strings as UTF-8, each byte string hashed with a 64-bit polynomial hash and
finished with the splitmix64 mixer; nulls hash to a constant. The hash of a row
combines its columns' hashes in column order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.errors import InvalidArgument, NotFound

SPLITS = ("train", "validation", "test")
DEFAULT_RATIOS = (0.8, 0.1, 0.1)
_PRIME = np.uint64(0x100000001B3)
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
U64 = npt.NDArray[np.uint64]


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """Split ratios: positive and summing to 1 (within rounding)."""
    values = tuple(float(r) for r in ratios)
    if not values or any(r < 0 for r in values) or abs(sum(values) - 1.0) > 1e-9:
        raise InvalidArgument(f"split ratios must be non-negative and sum to 1, got {list(values)}")
    return values


def _mix(h: U64) -> U64:
    """splitmix64's finalizer: spreads every input bit over the whole word."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _bytes_hash(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> U64:
    """A polynomial hash of each byte string data[offsets[i]:offsets[i+1]], vectorized."""
    rows = len(offsets) - 1
    lengths = np.diff(offsets)
    if rows == 0:
        return np.zeros(0, dtype=np.uint64)
    total = int(offsets[-1] - offsets[0])
    if total == 0:
        return _mix(lengths.astype(np.uint64))
    position = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1] - offsets[0], lengths)
    longest = int(lengths.max())
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(longest, _PRIME, dtype=np.uint64), dtype=np.uint64)
        weighted = data[offsets[0] : offsets[-1]].astype(np.uint64) * powers[position]
        sums = np.zeros(rows, dtype=np.uint64)
        nonempty = lengths > 0
        starts = (offsets[:-1] - offsets[0])[nonempty]
        sums[nonempty] = np.add.reduceat(weighted, starts)
        # The length keeps "a" + "" apart from "" + "a" when columns are combined.
        return _mix(sums + lengths.astype(np.uint64) * _PRIME + _NULL_HASH + np.uint64(1))


def column_hash(column: pa.Array | pa.ChunkedArray) -> U64:
    """The stable 64-bit hash of every value of a column."""
    if isinstance(column, pa.ChunkedArray):
        chunks = [column_hash(chunk) for chunk in column.chunks]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint64)
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        values = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        hashed = _mix(values.astype(np.int64).view(np.uint64) ^ np.uint64(0x51ED270B27))
    elif pa.types.is_floating(kind):
        floats = pc.fill_null(column.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        floats = np.where(floats == 0.0, 0.0, floats)  # -0.0 and 0.0 are one value
        hashed = _mix(floats.astype(np.float64).view(np.uint64))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        hashed = _string_hash(column)
    elif pa.types.is_temporal(kind):
        as_int = (
            column.cast(pa.int64()) if not pa.types.is_date32(kind) else column.cast(pa.int32())
        )
        return column_hash(as_int)
    else:
        raise InvalidArgument(f"cannot hash a column of type {kind} for a split")
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    return np.where(nulls, _NULL_HASH, hashed)


def _string_hash(column: pa.Array) -> U64:
    strings = (
        column.cast(pa.large_binary()) if not pa.types.is_large_binary(column.type) else column
    )
    strings = pc.fill_null(strings, b"")
    buffers = strings.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, dtype=np.uint8)
    )
    return _bytes_hash(data, offsets)


def row_hash(batch: pa.RecordBatch | pa.Table, key: str | Sequence[str] | None = None) -> U64:
    """The stable hash of each row: of the `key` column(s), or of the whole row's content."""
    names = [key] if isinstance(key, str) else list(key or batch.schema.names)
    missing = [n for n in names if n not in batch.schema.names]
    if missing:
        raise NotFound(f"split key column {missing[0]!r} is not in the data")
    combined = np.zeros(batch.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in names:
            combined = _mix(combined * _PRIME + column_hash(batch.column(name)))
    return combined


def hash_split(
    batch: pa.RecordBatch | pa.Table,
    *,
    key: str | Sequence[str] | None = None,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
) -> npt.NDArray[np.int8]:
    """The split index (0 train, 1 validation, 2 test, ...) of each row, by its hash."""
    bounds = np.cumsum(check_ratios(ratios))
    with np.errstate(over="ignore"):
        hashed = _mix(row_hash(batch, key) ^ _mix(np.array([seed], dtype=np.uint64)))
    unit = (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    index = np.searchsorted(bounds, unit, side="right")
    return np.minimum(index, len(bounds) - 1).astype(np.int8)


def time_cutoffs(values: pa.Array | pa.ChunkedArray, ratios: Sequence[float]) -> list[Any]:
    """Times that cut a column into consecutive splits of the given ratios (oldest first)."""
    bounds = np.cumsum(check_ratios(ratios))[:-1]
    if len(values) - values.null_count == 0:
        raise InvalidArgument("the time column has no values to split on")
    kind = values.type
    # Arrow's quantile wants numbers: times go through their integer form and back.
    numbers = values.cast(pa.int64()) if pa.types.is_temporal(kind) else values
    quantiles = pc.quantile(numbers, q=list(bounds), interpolation="lower")
    if pa.types.is_temporal(kind):
        return [pa.scalar(q.as_py(), pa.int64()).cast(kind).as_py() for q in quantiles]
    return [q.as_py() for q in quantiles]


def time_split(
    batch: pa.RecordBatch | pa.Table, column: str, cutoffs: Sequence[Any]
) -> npt.NDArray[np.int8]:
    """The split index of each row: rows up to the first cutoff train, and so on.

    Rows with no time go to the last split, so they never leak into training.
    """
    if column not in batch.schema.names:
        raise NotFound(f"time column {column!r} is not in the data")
    times = batch.column(column)
    index = np.zeros(batch.num_rows, dtype=np.int8)
    for cutoff in cutoffs:
        after = pc.fill_null(pc.greater(times, pa.scalar(cutoff, type=times.type)), True)
        index += after.to_numpy(zero_copy_only=False).astype(np.int8)
    return index
