"""Statistics: exact values on small data, merge == one pass, sketches within their bounds."""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ratchet.data.sketches import HyperLogLog, QuantileSketch, hash_strings
from ratchet.data.stats import (
    Bucket,
    DatasetStatistics,
    StatsAccumulator,
    compute_statistics,
)
from ratchet.errors import InvalidArgument, NotFound


def batch(**columns: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal structures, floats to 1e-9 relative."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def mixed_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for i in range(10):
        values = rng.normal(size=rows) if i % 2 else rng.integers(-50, 50, rows)
        columns[f"num{i}"] = pa.array(values, mask=rng.random(rows) < 0.05)
    for i in range(10):
        vocabulary = np.array([f"c{i}_{j}" for j in range(1000)])
        picks = vocabulary[rng.zipf(1.5, rows) % 1000]
        columns[f"cat{i}"] = pa.array(picks, mask=rng.random(rows) < 0.05)
    return pa.table(columns)


def test_numeric_exact_values() -> None:
    stats = compute_statistics([batch(x=[1.0, 2.0, 0.0, None, math.nan, 4.0, 0.0])])
    x = stats.feature("x")
    assert x.type == "float" and x.categorical is None and x.numeric is not None
    n = x.numeric
    values = np.array([1.0, 2.0, 0.0, 4.0, 0.0])
    assert (n.count, n.missing, n.zeros, n.min, n.max) == (5, 2, 2, 0.0, 4.0)
    assert n.mean == pytest.approx(values.mean())
    assert n.std == pytest.approx(values.std(ddof=0))
    assert n.quantiles == pytest.approx(tuple(np.quantile(values, np.linspace(0, 1, 11))))
    assert len(n.histogram) == 10 and sum(b.count for b in n.histogram) == 5
    assert n.histogram[0] == Bucket(0.0, 0.4, 2)
    assert n.histogram[-1].count == 1 and n.histogram[-1].high == 4.0
    assert (x.count, x.missing) == (5, 2)


def test_int_bool_and_constant_columns() -> None:
    stats = compute_statistics(
        [batch(i=[3, 1, 2, None], b=[True, False, True, None], c=[7, 7, 7, 7])],
        quantiles=4,
        histogram_buckets=2,
    )
    i = stats.feature("i")
    assert i.type == "int" and i.numeric is not None
    assert i.numeric.quantiles == (1.0, 1.5, 2.0, 2.5, 3.0)
    assert [b.count for b in i.numeric.histogram] == [1, 2]
    b = stats.feature("b")
    assert b.type == "bool" and b.numeric is not None
    assert (b.numeric.count, b.numeric.zeros, b.numeric.mean) == (3, 1, pytest.approx(2 / 3))
    c = stats.feature("c").numeric
    assert c is not None and c.std == 0.0 and c.histogram == (Bucket(7.0, 7.0, 4),)


def test_categorical_top_k_ties_broken_by_value() -> None:
    values = ["b", "a", "c", "b", "a", None, "d", "c", "e"]
    stats = compute_statistics([batch(s=values)], top_k=3)
    s = stats.feature("s")
    assert s.type == "string" and s.numeric is None and s.categorical is not None
    assert (s.categorical.count, s.categorical.missing, s.categorical.distinct) == (8, 1, 5)
    assert s.categorical.top == (("a", 2), ("b", 2), ("c", 2))


def test_dictionary_and_date_columns_are_categorical() -> None:
    dictionary = pa.array(["x", "y", "x", None]).dictionary_encode()
    dates = pa.array([0, 1, 1, 1], pa.date32())
    stats = compute_statistics([pa.RecordBatch.from_arrays([dictionary, dates], ["d", "t"])])
    d = stats.feature("d").categorical
    assert d is not None and d.top == (("x", 2), ("y", 1)) and d.missing == 1
    t = stats.feature("t")
    assert t.type == "date32[day]" and t.categorical is not None
    assert t.categorical.top == (("1970-01-02", 3), ("1970-01-01", 1))


def test_merge_of_shards_equals_one_pass() -> None:
    table = mixed_table(20_000)
    whole = StatsAccumulator.create(label="num1").add(table.combine_chunks().to_batches()[0])
    shards = [StatsAccumulator.create(label="num1") for _ in range(4)]
    for i, piece in enumerate(table.to_batches(max_chunksize=1_500)):
        shards[i % 4].add(piece)
    merged = shards[0]
    for shard in shards[1:]:
        merged = merged.merge(shard)
    one, many = whole.finish(), merged.finish()
    assert_close(one.to_dict(), many.to_dict())
    assert one.label == "num1" and one.rows == 20_000


def test_merge_leaves_other_untouched() -> None:
    a = StatsAccumulator.create().add(batch(x=[1, 2]))
    b = StatsAccumulator.create().add(batch(x=[3, 4], y=["u", "v"]))
    before = b.finish()
    a.merge(b)
    a.add(batch(x=[5], y=["w"]))
    assert b.finish() == before


def test_pickle_round_trip_mid_stream() -> None:
    table = mixed_table(5_000)
    pieces = table.to_batches(max_chunksize=1_000)
    straight = StatsAccumulator.create()
    for piece in pieces:
        straight.add(piece)
    shipped = StatsAccumulator.create().add(pieces[0])
    shipped = pickle.loads(pickle.dumps(shipped))
    for piece in pieces[1:]:
        shipped.add(piece)
    assert_close(straight.finish().to_dict(), shipped.finish().to_dict())


def test_sketch_state_pickles() -> None:
    values = np.random.default_rng(1).normal(size=250_000)
    accumulator = StatsAccumulator.create().add(batch(x=values))
    restored = pickle.loads(pickle.dumps(accumulator))
    assert restored.finish() == accumulator.finish()


def test_json_round_trip_is_exact() -> None:
    stats = compute_statistics(
        [mixed_table(3_000).combine_chunks().to_batches()[0], batch(num0=[None, None])],
        label="cat0",
    )
    text = json.dumps(stats.to_dict())
    assert DatasetStatistics.from_dict(json.loads(text)) == stats


def test_quantile_sketch_within_one_percent_rank_error() -> None:
    values = np.random.default_rng(7).lognormal(size=300_000)
    pieces = [batch(x=values[i : i + 20_000]) for i in range(0, len(values), 20_000)]
    x = compute_statistics(pieces, threads=1).feature("x").numeric
    assert x is not None and x.count == 300_000
    ordered = np.sort(values)
    for q, estimate in zip(np.linspace(0, 1, 11), x.quantiles, strict=True):
        rank = np.searchsorted(ordered, estimate, side="right") / len(values)
        assert abs(rank - q) <= 0.01, (q, rank)
    assert x.mean == pytest.approx(values.mean(), rel=1e-9)
    assert x.std == pytest.approx(values.std(), rel=1e-9)
    assert sum(b.count for b in x.histogram) == 300_000
    exact, _ = np.histogram(values, bins=10, range=(values.min(), values.max()))
    counts = np.array([b.count for b in x.histogram])
    assert np.abs(counts - exact).max() <= 0.01 * len(values)


def test_quantile_sketch_large_single_batch_and_merge() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.uniform(size=400_000) for _ in range(3)]
    sketches = []
    for part in parts:
        sketch = QuantileSketch()
        sketch.add(part)
        sketches.append(sketch)
    for other in sketches[1:]:
        sketches[0].merge(other)
    assert sketches[0].count == 1_200_000
    qs = np.linspace(0.05, 0.95, 19)
    # Uniform values: a quantile estimate is its own rank.
    assert np.abs(sketches[0].quantiles(qs) - qs).max() <= 0.01
    _, weights = sketches[0].weighted()
    assert weights.sum() == pytest.approx(1_200_000, rel=0.01)


def test_categorical_sketch_past_the_distinct_cap() -> None:
    rng = np.random.default_rng(5)
    unique = np.array([f"id{i}" for i in range(150_000)])
    heavy = np.array(["hot"] * 30_000 + ["warm"] * 20_000)
    values = np.concatenate([unique, heavy, unique[:1000]])
    rng.shuffle(values)
    pieces = [batch(s=values[i : i + 50_000]) for i in range(0, len(values), 50_000)]
    s = compute_statistics(pieces, top_k=2, threads=2).feature("s").categorical
    assert s is not None and s.count == len(values)
    assert abs(s.distinct - 150_002) <= 0.03 * 150_002
    assert [v for v, _ in s.top] == ["hot", "warm"]
    # Misra-Gries counts are low by at most count / (SUMMARY_SIZE + 1).
    assert 30_000 - len(values) / 10_001 <= s.top[0][1] <= 30_000


def test_hyperloglog_and_hash() -> None:
    strings = pa.array([f"k{i}" for i in range(50_000)] + [None, ""])
    hashes = hash_strings(strings)
    assert len(hashes) == 50_001 and len(np.unique(hashes)) == 50_001
    assert np.array_equal(hashes, hash_strings(strings))
    hll = HyperLogLog()
    hll.add(hashes)
    assert abs(hll.estimate() - 50_001) <= 0.03 * 50_001
    small = HyperLogLog()
    small.add(hash_strings(pa.array(["a", "b", "c"])))
    assert round(small.estimate()) == 3


def test_mixed_twenty_column_table_and_threads() -> None:
    table = mixed_table(50_000)
    one = compute_statistics(table.to_batches(max_chunksize=7_000), label="num3", threads=1)
    two = compute_statistics(table.to_batches(max_chunksize=7_000), label="num3", threads=2)
    assert_close(one.to_dict(), two.to_dict())
    assert len(one.features) == 20 and one.rows == 50_000
    assert {f.type for f in one.features} == {"int", "float", "string"}
    for feature in one.features:
        assert feature.count + feature.missing == 50_000
        if feature.categorical is not None:
            assert feature.categorical.distinct <= 1000 and len(feature.categorical.top) == 20


def test_empty_input_and_empty_batch() -> None:
    assert compute_statistics([]) == DatasetStatistics(0, (), None)
    schema = pa.schema([("x", pa.float64()), ("s", pa.string())])
    stats = compute_statistics([pa.RecordBatch.from_pylist([], schema=schema)])
    assert stats.rows == 0
    x, s = stats.feature("x"), stats.feature("s")
    assert x.numeric is not None and x.numeric.count == 0 and x.numeric.mean is None
    assert s.categorical is not None and s.categorical.top == ()


def test_all_null_column_and_absent_column() -> None:
    first = pa.RecordBatch.from_pydict({"n": pa.nulls(3), "x": [1, 2, 3]})
    second = pa.RecordBatch.from_pydict({"n": pa.nulls(2)})
    stats = compute_statistics([first, second])
    n = stats.feature("n")
    assert (n.type, n.count, n.missing, n.numeric, n.categorical) == ("null", 0, 5, None, None)
    x = stats.feature("x")
    assert (x.count, x.missing) == (3, 2)


def test_null_typed_batch_then_values() -> None:
    stats = compute_statistics(
        [pa.RecordBatch.from_pydict({"v": pa.nulls(2)}), batch(v=["a", "a"])], threads=1
    )
    v = stats.feature("v")
    assert v.type == "string" and v.categorical is not None
    assert (v.categorical.count, v.categorical.missing) == (2, 2)


def test_type_changes_between_batches() -> None:
    stats = compute_statistics([batch(v=[1, 2]), batch(v=[0.5])], threads=1)
    v = stats.feature("v")
    assert v.type == "float" and v.numeric is not None and v.numeric.min == 0.5
    with pytest.raises(InvalidArgument, match="changes type"):
        compute_statistics([batch(v=[1, 2]), batch(v=["a"])])


def test_label_and_errors() -> None:
    stats = compute_statistics([batch(x=[1.0], y=["yes"])], label="y")
    assert stats.label == "y" and stats.feature("y").categorical is not None
    with pytest.raises(NotFound, match="label"):
        compute_statistics([batch(x=[1.0])], label="y")
    with pytest.raises(NotFound):
        stats.feature("nope")
    with pytest.raises(InvalidArgument):
        StatsAccumulator.create(top_k=0)
    with pytest.raises(InvalidArgument):
        compute_statistics([], threads=0)
    with pytest.raises(InvalidArgument, match="different options"):
        StatsAccumulator.create(top_k=3).merge(StatsAccumulator.create())
    with pytest.raises(InvalidArgument, match="unsupported"):
        compute_statistics([batch(v=[[1, 2]])])


def test_infinities_stay_in_range() -> None:
    x = compute_statistics([batch(x=[-math.inf, 1.0, 2.0, math.inf])]).feature("x").numeric
    assert x is not None and (x.count, x.min, x.max) == (4, -math.inf, math.inf)
    assert x.quantiles[0] == -math.inf and x.quantiles[-1] == math.inf
    assert not any(math.isnan(q) for q in x.quantiles)
    assert x.histogram[0] == Bucket(1.0, 1.1, 2) and x.histogram[-1].count == 2
