"""Dataset statistics (TFDV-like): a mergeable accumulator over Arrow record batches.

This module owns the statistics records (`DatasetStatistics` and its parts),
their JSON form, and `StatsAccumulator`, the partial state an engine computes
per shard, merges and finishes. It does not read files (`ratchet.data.io`),
infer schemas (`schema`) or record anything in the metadata store (callers do).
The approximate sketches it falls back to live in `ratchet.data.sketches`.

Semantics, per column:

- Types: integers -> "int", floats and decimals -> "float", booleans -> "bool"
  (numeric, as 0/1), strings and dictionaries of strings -> "string"; other
  types castable to string (dates, timestamps) are categorical under their
  Arrow name. A column of Arrow type null in every batch has type "null".
  Numeric types that differ between batches merge to the wider one
  (bool < int < float); numeric against categorical is `InvalidArgument`.
- count: non-missing values; missing: nulls, NaN, and rows of batches that
  lacked the column. A typed column with no value has count 0 and None stats.
- Numeric: zeros, min, max, mean and the *population* std (ddof=0), merged
  with Chan et al.'s parallel algorithm. Integers are summarized as float64.
  `quantiles` holds `quantiles + 1` cut points (fractions 0, 1/q, ..., 1);
  they are exact (numpy's linear interpolation) while the column holds at most
  `EXACT_VALUES` values in total, then come from a `QuantileSketch` (rank error
  under 1 %, see `sketches`). The histogram has equal-width buckets over the
  finite [min, max] (infinities fall in the end buckets; a constant column gets
  one bucket); its counts always sum to count (sketch counts are rounded by
  largest remainder).
- Categorical: exact value counts while a column has at most `EXACT_DISTINCT`
  distinct values; beyond, `distinct` is a HyperLogLog estimate (0.81 %
  standard error) and the counts a Misra-Gries summary of `SUMMARY_SIZE`
  entries, whose counts are low by at most (count - summarized) / 10,001.
  `top` lists the `top_k` most frequent values, ties broken by value.
"""

from __future__ import annotations

import copy
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.data.sketches import (
    Floats,
    HyperLogLog,
    QuantileSketch,
    hash_strings,
    weighted_quantiles,
)
from ratchet.errors import InvalidArgument, NotFound

EXACT_VALUES = 100_000
EXACT_DISTINCT = 100_000
SUMMARY_SIZE = 10_000
CHUNK_ROWS = 131_072
_NUMERIC_RANK = {"bool": 0, "int": 1, "float": 2}

npt_int = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Bucket:
    low: float
    high: float
    count: int


@dataclass(frozen=True)
class NumericStats:
    count: int
    missing: int
    zeros: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    quantiles: tuple[float, ...]
    histogram: tuple[Bucket, ...]


@dataclass(frozen=True)
class CategoricalStats:
    count: int
    missing: int
    distinct: int
    top: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class FeatureStatistics:
    name: str
    type: str
    numeric: NumericStats | None
    categorical: CategoricalStats | None
    count: int = 0
    missing: int = 0


@dataclass(frozen=True)
class DatasetStatistics:
    rows: int
    features: tuple[FeatureStatistics, ...]
    label: str | None = None

    def feature(self, name: str) -> FeatureStatistics:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise NotFound(f"no feature {name!r} in the statistics")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetStatistics:
        def feature(f: dict[str, Any]) -> FeatureStatistics:
            num, cat = f.get("numeric"), f.get("categorical")
            numeric = None
            if num is not None:
                buckets = tuple(Bucket(**b) for b in num["histogram"])
                numeric = NumericStats(
                    **{**num, "quantiles": tuple(num["quantiles"]), "histogram": buckets}
                )
            categorical = None
            if cat is not None:
                top = tuple((str(v), int(c)) for v, c in cat["top"])
                categorical = CategoricalStats(**{**cat, "top": top})
            return FeatureStatistics(
                name=f["name"],
                type=f["type"],
                numeric=numeric,
                categorical=categorical,
                count=f["count"],
                missing=f["missing"],
            )

        features = tuple(feature(f) for f in d["features"])
        return cls(rows=d["rows"], features=features, label=d.get("label"))


@dataclass
class _Null:
    missing: int = 0


@dataclass
class _Numeric:
    type: str
    count: int = 0
    missing: int = 0
    zeros: int = 0
    min: float = np.inf
    max: float = -np.inf
    mean: float = 0.0
    m2: float = 0.0
    values: list[Floats] = field(default_factory=list)
    sketch: QuantileSketch | None = None

    def merge(self, o: _Numeric) -> None:
        if _NUMERIC_RANK[o.type] > _NUMERIC_RANK[self.type]:
            self.type = o.type
        n = self.count + o.count
        if o.count:
            delta = o.mean - self.mean
            self.mean += delta * o.count / n
            self.m2 += o.m2 + delta * delta * self.count * o.count / n
        self.count, self.missing, self.zeros = n, self.missing + o.missing, self.zeros + o.zeros
        self.min, self.max = min(self.min, o.min), max(self.max, o.max)
        if self.sketch is None and o.sketch is None and n <= EXACT_VALUES:
            self.values += o.values
            return
        if self.sketch is None:
            self.sketch = _sketch_of(self.values)
            self.values = []
        self.sketch.merge(o.sketch if o.sketch is not None else _sketch_of(o.values))

    def finish(self, name: str, buckets: int, quantiles: int) -> FeatureStatistics:
        qs = np.linspace(0.0, 1.0, quantiles + 1)
        if self.count == 0:
            numeric = NumericStats(0, self.missing, 0, None, None, None, None, (), ())
        else:
            if self.sketch is None:
                values = np.sort(np.concatenate(self.values))
                weights = np.ones(len(values))
                with np.errstate(invalid="ignore"):
                    cuts = np.quantile(values, qs)
                # Interpolating next to an infinity gives NaN: take the nearest item instead.
                nan = np.isnan(cuts)
                cuts[nan] = np.quantile(values, qs[nan], method="inverted_cdf")
            else:
                values, weights = self.sketch.weighted()
                cuts = weighted_quantiles(values, weights, qs)
            cuts[0], cuts[-1] = self.min, self.max
            std = float(np.sqrt(max(self.m2, 0.0) / self.count))
            histogram = _histogram(values, weights, (self.min, self.max), self.count, buckets)
            numeric = NumericStats(
                *(self.count, self.missing, self.zeros, self.min, self.max, self.mean, std),
                quantiles=tuple(float(c) for c in cuts),
                histogram=histogram,
            )
        return FeatureStatistics(name, self.type, numeric, None, self.count, self.missing)


@dataclass
class _Categorical:
    type: str
    count: int = 0
    missing: int = 0
    values: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    counts: npt_int = field(default_factory=lambda: np.zeros(0, np.int64))
    hll: HyperLogLog | None = None

    def merge(self, o: _Categorical) -> None:
        self.count, self.missing = self.count + o.count, self.missing + o.missing
        self.values, self.counts = _sum_counts([self.values, o.values], [self.counts, o.counts])
        if self.hll is None and o.hll is None and len(self.values) <= EXACT_DISTINCT:
            return
        mine = self.hll or _hll_of(self.values)
        mine.merge(o.hll or _hll_of(o.values))
        self.hll = mine
        if len(self.counts) > SUMMARY_SIZE:
            # Misra-Gries merge: subtract the (k+1)-th largest count, keep what stays positive.
            threshold = np.partition(self.counts, -(SUMMARY_SIZE + 1))[-(SUMMARY_SIZE + 1)]
            keep = self.counts > threshold
            self.values = self.values.filter(pa.array(keep))
            self.counts = self.counts[keep] - threshold

    def finish(self, name: str, top_k: int) -> FeatureStatistics:
        table = pa.table({"v": self.values, "c": pa.array(self.counts, pa.int64())})
        order = pc.sort_indices(table, [("c", "descending"), ("v", "ascending")])
        top = table.take(order[:top_k])
        pairs = tuple(zip(top["v"].to_pylist(), top["c"].to_pylist(), strict=True))
        distinct = len(self.values) if self.hll is None else round(self.hll.estimate())
        categorical = CategoricalStats(self.count, self.missing, distinct, pairs)
        return FeatureStatistics(name, self.type, None, categorical, self.count, self.missing)


_Column = _Null | _Numeric | _Categorical


def _hll_of(values: pa.Array) -> HyperLogLog:
    hll = HyperLogLog()
    hll.add(hash_strings(values))
    return hll


def _sketch_of(parts: list[Floats]) -> QuantileSketch:
    sketch = QuantileSketch()
    for values in parts:
        sketch.add(values)
    return sketch


def _sum_counts(values: list[pa.Array], counts: list[npt_int]) -> tuple[pa.Array, npt_int]:
    table = pa.table({"v": pa.concat_arrays(values), "c": np.concatenate(counts)})
    summed = table.group_by("v", use_threads=False).aggregate([("c", "sum")])
    return summed["v"].combine_chunks(), summed["c_sum"].to_numpy()


def _histogram(
    values: Floats, weights: Floats, bounds: tuple[float, float], count: int, buckets: int
) -> tuple[Bucket, ...]:
    """Equal-width buckets over the finite part of `bounds`; `values` are sorted."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite[0]), float(finite[-1])) if len(finite) else (0.0, 0.0)
    low, high = (b if math.isfinite(b) else f for b, f in zip(bounds, (low, high), strict=True))
    if low == high:
        return (Bucket(float(values[0]), float(values[-1]), count),)
    edges = np.linspace(low, high, buckets + 1)
    raw, _ = np.histogram(np.clip(values, low, high), bins=edges, weights=weights)
    scaled = raw * (count / raw.sum())
    rounded = np.floor(scaled).astype(np.int64)
    short = count - int(rounded.sum())
    rounded[np.argsort(-(scaled - rounded), kind="stable")[:short]] += 1
    return tuple(
        Bucket(float(edges[i]), float(edges[i + 1]), int(rounded[i])) for i in range(buckets)
    )


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_dictionary(t):
        return _type_name(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    return str(t)


def _column_of(name: str, array: pa.Array) -> _Column:
    kind = _type_name(array.type)
    if kind == "null":
        return _Null(missing=len(array))
    if kind in _NUMERIC_RANK:
        floats = array if array.type == pa.float64() else pc.cast(array, pa.float64())
        a = floats.to_numpy(zero_copy_only=False)
        nan = np.isnan(a)
        missing = int(np.count_nonzero(nan))
        v = a[~nan] if missing else a
        column = _Numeric(kind, count=len(v), missing=missing)
        if len(v):
            with np.errstate(invalid="ignore", over="ignore"):
                column.mean = float(v.mean())
                column.m2 = float(np.square(v - column.mean).sum())
            column.zeros = int(np.count_nonzero(v == 0))
            column.min, column.max = float(v.min()), float(v.max())
        if len(v) <= EXACT_VALUES:
            column.values = [np.array(v, dtype=np.float64)]
        else:
            column.sketch = _sketch_of([v])
        return column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    try:
        strings = array if pa.types.is_string(array.type) else pc.cast(array, pa.string())
    except pa.ArrowNotImplementedError as e:
        raise InvalidArgument(f"column {name!r} has unsupported type {array.type}") from e
    counted = pc.value_counts(strings)
    values = counted.field("values")
    present = values.is_valid()
    categorical = _Categorical(kind, len(array) - array.null_count, array.null_count)
    categorical.values = values.filter(present)
    categorical.counts = counted.field("counts").filter(present).to_numpy()
    return categorical


def _merge_column(name: str, a: _Column, b: _Column) -> _Column:
    if isinstance(a, _Null):
        a, b = copy.deepcopy(b), a
    if isinstance(b, _Null):
        a.missing += b.missing
        return a
    if isinstance(a, _Numeric) and isinstance(b, _Numeric):
        a.merge(b)
        return a
    if isinstance(a, _Categorical) and isinstance(b, _Categorical) and a.type == b.type:
        a.merge(b)
        return a
    kinds = f"{getattr(a, 'type', 'null')} and {getattr(b, 'type', 'null')}"
    raise InvalidArgument(f"column {name!r} changes type between batches: {kinds}")


@dataclass
class StatsAccumulator:
    """The mergeable partial state of statistics: `create`, `add`/`merge` per shard, `finish`."""

    label: str | None = None
    top_k: int = 20
    quantiles: int = 10
    histogram_buckets: int = 10
    rows: int = 0
    columns: dict[str, _Column] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        label: str | None = None,
        top_k: int = 20,
        quantiles: int = 10,
        histogram_buckets: int = 10,
    ) -> StatsAccumulator:
        for option, value in (("top_k", top_k), ("quantiles", quantiles)):
            if not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{option} must be a positive integer, got {value!r}")
        if not isinstance(histogram_buckets, int) or histogram_buckets < 1:
            raise InvalidArgument(
                f"histogram_buckets must be a positive integer, got {histogram_buckets!r}"
            )
        return cls(label, top_k, quantiles, histogram_buckets)

    def add(self, batch: pa.RecordBatch) -> StatsAccumulator:
        part = StatsAccumulator(self.label, self.top_k, self.quantiles, self.histogram_buckets)
        part.rows = batch.num_rows
        part.columns = {
            name: _column_of(name, batch.column(i)) for i, name in enumerate(batch.schema.names)
        }
        return self._merge(part, adopt=True)

    def merge(self, other: StatsAccumulator) -> StatsAccumulator:
        """Fold `other` into this state; `other` is left as it was."""
        return self._merge(other, adopt=False)

    def _merge(self, other: StatsAccumulator, *, adopt: bool) -> StatsAccumulator:
        options = (self.label, self.top_k, self.quantiles, self.histogram_buckets)
        if options != (other.label, other.top_k, other.quantiles, other.histogram_buckets):
            raise InvalidArgument("cannot merge statistics computed with different options")
        self.rows += other.rows
        for name, column in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                self.columns[name] = column if adopt else copy.deepcopy(column)
            else:
                self.columns[name] = _merge_column(name, mine, column)
        return self

    def finish(self) -> DatasetStatistics:
        features = []
        for name, column in self.columns.items():
            absent = self.rows - (column.missing + getattr(column, "count", 0))
            column.missing += absent
            if isinstance(column, _Null):
                feature = FeatureStatistics(name, "null", None, None, 0, column.missing)
            elif isinstance(column, _Numeric):
                feature = column.finish(name, self.histogram_buckets, self.quantiles)
            else:
                feature = column.finish(name, self.top_k)
            column.missing -= absent
            features.append(feature)
        if self.label is not None and features and self.label not in self.columns:
            raise NotFound(f"label column {self.label!r} is not in the data: {list(self.columns)}")
        return DatasetStatistics(self.rows, tuple(features), self.label)


def _chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for offset in range(0, max(batch.num_rows, 1), CHUNK_ROWS):
            yield batch.slice(offset, CHUNK_ROWS)


def compute_statistics(
    batches: Iterable[pa.RecordBatch],
    *,
    label: str | None = None,
    top_k: int = 20,
    quantiles: int = 10,
    histogram_buckets: int = 10,
    threads: int | None = None,
) -> DatasetStatistics:
    """Statistics of all `batches` in this process, streamed through `threads` accumulators.

    Batches are cut into slices of `CHUNK_ROWS`; slice i goes to accumulator
    i % threads, in order, so the result does not depend on thread timing.
    At most 2 * threads slices are in flight, so memory stays bounded.
    """
    threads = os.cpu_count() or 1 if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise InvalidArgument(f"threads must be a positive integer, got {threads!r}")
    parts = [
        StatsAccumulator.create(
            label=label, top_k=top_k, quantiles=quantiles, histogram_buckets=histogram_buckets
        )
        for _ in range(threads)
    ]
    pools = [ThreadPoolExecutor(max_workers=1) for _ in range(threads)]
    pending: deque[Future[StatsAccumulator]] = deque()
    try:
        for i, chunk in enumerate(_chunks(batches)):
            pending.append(pools[i % threads].submit(parts[i % threads].add, chunk))
            if len(pending) > 2 * threads:
                pending.popleft().result()
        for future in pending:
            future.result()
    finally:
        for pool in pools:
            pool.shutdown(cancel_futures=True)
    for part in parts[1:]:
        parts[0]._merge(part, adopt=True)
    return parts[0].finish()
