"""Slices: named subsets of the evaluated rows, by column value, numeric bucket or predicate.

Owns the three ways to cut rows (`Values`, `Buckets`, `Predicate`), the shorthand
that builds them (`slicers`) and `masks`, which turns them into one boolean mask
per slice over an Arrow table, with names that read as conditions
(`plan=pro`, `18<=age<30`, `age=(missing)`). Every row of a group of slices is in
exactly one of them, so slice counts add up. Metrics per slice are `report`'s.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.errors import InvalidArgument

Mask = npt.NDArray[np.bool_]
OVERALL = "overall"
MISSING, OTHER = "(missing)", "(other)"


@dataclass(frozen=True)
class Values:
    """One slice per value of `column`; past the `limit` most frequent, one `(other)` slice."""

    column: str
    limit: int = 20

    @property
    def group(self) -> str:
        return self.column

    def masks(self, table: pa.Table) -> list[tuple[str, Mask]]:
        values = [_name(v) for v in _column(table, self.column).to_pylist()]
        counts = Counter(values)
        # Most frequent first, ties by name, so the same rows always give the same slices.
        kept = sorted(counts, key=lambda v: (-counts[v], v))[: self.limit]
        array = np.array(values, dtype=object)
        found = [(f"{self.column}={v}", array == v) for v in sorted(kept)]
        rest = ~np.isin(array, kept)
        if rest.any():
            found.append((f"{self.column}={OTHER}", rest))
        return found


@dataclass(frozen=True)
class Buckets:
    """One slice per interval between increasing `edges` of a numeric column, both tails
    included; missing values (null or NaN) in a slice of their own when there are any."""

    column: str
    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        if not edges or any(not math.isfinite(e) for e in edges):
            raise InvalidArgument(f"bucket edges of {self.column!r} must be finite numbers")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise InvalidArgument(f"bucket edges of {self.column!r} must increase: {list(edges)}")
        object.__setattr__(self, "edges", edges)

    @property
    def group(self) -> str:
        return self.column

    def masks(self, table: pa.Table) -> list[tuple[str, Mask]]:
        column = _column(table, self.column)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise InvalidArgument(
                f"bucket column {self.column!r} must be numeric, it holds {column.type}"
            )
        values = pc.fill_null(pc.cast(column, pa.float64()), math.nan).to_numpy()
        missing = np.isnan(values)
        e, c = [_number(edge) for edge in self.edges], self.column
        found = [(f"{c}<{e[0]}", values < self.edges[0])]
        for i in range(len(e) - 1):
            low, high = self.edges[i], self.edges[i + 1]
            found.append((f"{e[i]}<={c}<{e[i + 1]}", (values >= low) & (values < high)))
        found.append((f"{c}>={e[-1]}", values >= self.edges[-1]))
        if missing.any():
            found.append((f"{c}={MISSING}", missing))
        return found


@dataclass(frozen=True)
class Predicate:
    """One slice: the rows for which `test(table)` is true (a boolean array; null is false)."""

    name: str
    test: Callable[[pa.Table], Any]

    @property
    def group(self) -> str:
        return self.name

    def masks(self, table: pa.Table) -> list[tuple[str, Mask]]:
        try:
            result = self.test(table)
        except Exception as e:  # user code: say which slice failed, keep the cause
            raise InvalidArgument(
                f"slice {self.name!r}: the predicate raised {type(e).__name__}: {e}"
            ) from e
        if isinstance(result, pa.ChunkedArray | pa.Array):
            result = pc.fill_null(result, False).to_numpy(zero_copy_only=False)
        mask = np.asarray(result)
        if mask.dtype != np.bool_ or mask.shape != (table.num_rows,):
            raise InvalidArgument(
                f"slice {self.name!r}: the predicate must return {table.num_rows} booleans, "
                f"got {mask.dtype} of shape {list(mask.shape)}"
            )
        return [(self.name, mask)]


Slicer = Values | Buckets | Predicate
#: A column name (value slices), a slicer, or in a mapping {column: "values" (or
#: "column") | bucket edges, name: predicate}.
SliceSpecs = Mapping[str, Any] | Sequence[str | Slicer]


def slicers(specs: SliceSpecs | None) -> list[Slicer]:
    """Slicers from the shorthand: `["plan"]`, `{"plan": "values", "age": [18, 30, 65],
    "big": lambda t: pc.greater(t["spend"], 100)}`, or `Values`/`Buckets`/`Predicate`."""
    if specs is None:
        return []
    if isinstance(specs, str):
        raise InvalidArgument(f"give slices as a list or a mapping, not the string {specs!r}")
    if isinstance(specs, Mapping):
        return [_from_entry(str(key), spec) for key, spec in specs.items()]
    found: list[Slicer] = []
    for spec in specs:
        if isinstance(spec, str):
            found.append(Values(spec))
        elif isinstance(spec, Values | Buckets | Predicate):
            found.append(spec)
        else:
            raise InvalidArgument(f"a slice is a column name or a slicer, not {spec!r}")
    return found


def _from_entry(key: str, spec: Any) -> Slicer:
    if isinstance(spec, Values | Buckets | Predicate):
        return spec
    if spec in ("values", "column"):  # both read naturally: {"plan": "values"}
        return Values(key)
    if callable(spec):
        return Predicate(key, spec)
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        if not all(isinstance(e, int | float) and not isinstance(e, bool) for e in spec):
            raise InvalidArgument(f"bucket edges of {key!r} must be numbers, got {list(spec)}")
        return Buckets(key, tuple(spec))
    raise InvalidArgument(
        f"slice {key!r}: give 'values', a list of bucket edges or a predicate, not {spec!r}"
    )


def masks(table: pa.Table, chosen: Sequence[Slicer]) -> list[tuple[str, str, Mask]]:
    """(group, slice name, mask) of every slice, in the slicers' order; names are unique."""
    found: list[tuple[str, str, Mask]] = []
    seen = {OVERALL}
    for slicer in chosen:
        for name, mask in slicer.masks(table):
            if name in seen:
                raise InvalidArgument(f"two slices are named {name!r}; slice names must differ")
            seen.add(name)
            found.append((slicer.group, name, mask))
    return found


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise InvalidArgument(
            f"slice column {name!r} is not in the data ({', '.join(table.column_names)})"
        )
    return table.column(name)


def _name(value: Any) -> str:
    """A value as it reads in a slice name: 1.0 read from a CSV names the same slice as 1."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
