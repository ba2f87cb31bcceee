"""Synthetic rows: the source's marginals, missing values and correlations; labels; bad input."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ratchet.data.stats import DatasetStatistics, compute_statistics
from ratchet.errors import InvalidArgument
from ratchet.training.synthetic import (
    OTHER,
    SyntheticGenerator,
    fit_correlation,
    label_rows,
)

ROWS = 20_000
CITIES = {"paris": 0.4, "lyon": 0.3, "nice": 0.2, "lille": 0.1}


def spearman(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    present = ~(np.isnan(a) | np.isnan(b))
    ranks = [np.argsort(np.argsort(v[present])) for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def floats(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(pc.drop_null(column).to_numpy(), dtype=np.float64)


@pytest.fixture(scope="module")
def source() -> pa.Table:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(ROWS)
    y = 0.9 * x + np.sqrt(1 - 0.9**2) * rng.standard_normal(ROWS)
    cities = rng.choice(list(CITIES), ROWS, p=list(CITIES.values()))
    # 60 devices with Zipf-like frequencies: beyond the top 20 kept, a tail of ~10 % of rows.
    weights = 1.0 / np.arange(1, 61) ** 1.2
    devices = rng.choice([f"d{i:02}" for i in range(60)], ROWS, p=weights / weights.sum())
    return pa.table(
        {
            "age": pa.array(np.clip(np.rint(rng.normal(40, 12, ROWS)), 18, 90).astype(np.int64)),
            "income": rng.gamma(4.0, 10_000.0, ROWS),
            "score": pa.array(rng.normal(5.0, 2.0, ROWS), mask=rng.random(ROWS) < 0.1),
            "x": x,
            "y": y,
            "city": pa.array(cities, mask=rng.random(ROWS) < 0.05),
            "device": devices,
            "member": rng.random(ROWS) < 0.3,
            "label": (x + 0.3 * rng.standard_normal(ROWS) > 0).astype(np.int64),
        }
    )


@pytest.fixture(scope="module")
def statistics(source: pa.Table) -> DatasetStatistics:
    return compute_statistics(source.to_batches(), label="label")


@pytest.fixture(scope="module")
def independent(statistics: DatasetStatistics) -> pa.Table:
    return SyntheticGenerator.from_statistics(statistics).sample(ROWS, seed=1)


def test_rows_have_the_source_features_and_types(source: pa.Table, independent: pa.Table) -> None:
    assert independent.schema == source.drop_columns(["label"]).schema
    assert independent.num_rows == ROWS


@pytest.mark.parametrize("name", ["age", "income", "score", "x", "y"])
def test_numeric_marginals_match(source: pa.Table, independent: pa.Table, name: str) -> None:
    real, synthetic = floats(source[name]), floats(independent[name])
    assert abs(synthetic.mean() - real.mean()) < 0.03 * real.std()
    assert synthetic.std() == pytest.approx(real.std(), rel=0.05)
    levels = np.linspace(0.1, 0.9, 9)
    gaps = np.abs(np.quantile(synthetic, levels) - np.quantile(real, levels))
    assert gaps.max() < 0.05 * real.std()


def test_ints_stay_ints_and_values_stay_within_min_and_max(
    statistics: DatasetStatistics, independent: pa.Table
) -> None:
    assert independent.schema.field("age").type == pa.int64()
    for name in ("age", "income", "score", "x", "y"):
        numeric = statistics.feature(name).numeric
        assert numeric is not None and numeric.min is not None and numeric.max is not None
        assert pc.min(independent[name]).as_py() >= numeric.min
        assert pc.max(independent[name]).as_py() <= numeric.max


def test_categorical_frequencies_match_with_the_tail_as_other(
    source: pa.Table, independent: pa.Table
) -> None:
    for name in ("city", "device", "member"):
        real = Counter(source[name].to_pylist())
        synthetic = Counter(independent[name].to_pylist())
        top = [value for value, _ in real.most_common(20)]
        for value in top:
            assert abs(synthetic[value] - real[value]) / ROWS < 0.02, (name, value)
        # Values beyond the top 20 are not known by name: their mass goes to OTHER.
        tail = sum(count for value, count in real.items() if value not in top)
        assert abs(synthetic[OTHER] - tail) / ROWS < 0.02
    assert 0.05 < Counter(independent["device"].to_pylist())[OTHER] / ROWS < 0.2
    assert OTHER not in independent["city"].to_pylist()


def test_tail_can_be_dropped_instead(statistics: DatasetStatistics, source: pa.Table) -> None:
    rows = SyntheticGenerator.from_statistics(statistics, other=None).sample(ROWS, seed=1)
    devices = Counter(rows["device"].to_pylist())
    assert OTHER not in devices and len(devices) == 20
    # The top values are renormalized: the most frequent keeps its share among the top 20.
    real = Counter(source["device"].to_pylist())
    kept = sum(count for _, count in real.most_common(20))
    assert devices["d00"] / ROWS == pytest.approx(real["d00"] / kept, abs=0.02)


def test_missing_values_at_each_feature_ratio(source: pa.Table, independent: pa.Table) -> None:
    for name in source.drop_columns(["label"]).column_names:
        real = source[name].null_count / ROWS
        assert independent[name].null_count / ROWS == pytest.approx(real, abs=0.01), name
    assert independent["score"].null_count > 0.08 * ROWS


def test_same_seed_same_rows_even_from_stored_statistics(statistics: DatasetStatistics) -> None:
    stored = DatasetStatistics.from_dict(statistics.to_dict())
    first = SyntheticGenerator.from_statistics(statistics).sample(1000, seed=42)
    assert SyntheticGenerator.from_statistics(stored).sample(1000, seed=42).equals(first)
    assert not SyntheticGenerator.from_statistics(stored).sample(1000, seed=43).equals(first)


def test_copula_reproduces_correlations_the_independent_generator_does_not(
    source: pa.Table, statistics: DatasetStatistics, independent: pa.Table
) -> None:
    correlation = fit_correlation(source, statistics)
    generator = SyntheticGenerator.from_statistics(statistics, correlation=correlation)
    features = list(generator.features)
    assert correlation.shape == (len(features), len(features))
    assert np.array_equal(correlation, correlation.T)
    assert np.allclose(np.diag(correlation), 1.0)
    assert correlation[features.index("x"), features.index("y")] == pytest.approx(0.9, abs=0.02)

    correlated = generator.sample(ROWS, seed=1)
    assert spearman(source["x"], source["y"]) > 0.85
    assert spearman(correlated["x"], correlated["y"]) > 0.85
    assert abs(spearman(independent["x"], independent["y"])) < 0.1
    # The copula changes the joint law only: the marginals stay those of the source.
    assert floats(correlated["y"]).std() == pytest.approx(floats(source["y"]).std(), rel=0.05)
    assert correlated["score"].null_count / ROWS == pytest.approx(0.1, abs=0.01)


def test_copula_carries_correlation_to_categoricals_by_frequency_order() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(ROWS)
    # The most frequent size goes with small x, the least frequent with large x.
    size = np.where(x < 0.5, "s", np.where(x < 1.2, "m", "l"))
    table = pa.table({"x": x, "size": size})
    statistics = compute_statistics(table.to_batches())
    correlation = fit_correlation(table, statistics)
    rows = SyntheticGenerator.from_statistics(statistics, correlation=correlation).sample(
        ROWS, seed=5
    )
    order = {"s": 0, "m": 1, "l": 2}
    real = spearman(x, [order[s] for s in size])
    synthetic = spearman(rows["x"], [order[s] for s in rows["size"].to_pylist()])
    assert real > 0.6 and synthetic == pytest.approx(real, abs=0.05)


def test_a_matrix_that_is_not_positive_definite_is_regularized() -> None:
    table = pa.table({name: np.arange(100.0) for name in ("a", "b", "c")})
    statistics = compute_statistics(table.to_batches())
    impossible = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    generator = SyntheticGenerator.from_statistics(statistics, correlation=impossible)
    rows = generator.sample(5000, seed=0)
    assert rows.num_rows == 5000
    assert spearman(rows["a"], rows["b"]) > 0.3 and spearman(rows["a"], rows["c"]) < -0.3


def test_other_types_come_back_as_they_were() -> None:
    days = [datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 7) for i in range(700)]
    table = pa.table(
        {
            "day": days,
            "nothing": pa.nulls(700),
            "n": pa.array([i % 100 for i in range(700)], pa.int8()),
        }
    )
    statistics = compute_statistics(table.to_batches())
    correlation = fit_correlation(table, statistics)
    assert np.array_equal(correlation[1], [0.0, 1.0, 0.0])  # nothing to correlate with
    generator = SyntheticGenerator.from_statistics(statistics, correlation=correlation)
    rows = generator.sample(500, seed=0)
    assert rows.schema.field("day").type == pa.date32()
    assert set(rows["day"].to_pylist()) <= set(days)
    assert rows["nothing"].null_count == 500
    # Statistics keep an integer's kind, not its width.
    assert rows.schema.field("n").type == pa.int64()


def fit_teacher(table: pa.Table) -> Any:
    """A real baseline: least squares on the numeric features, thresholded at 1/2."""
    names = ["x", "y", "age", "income"]

    def design(rows: pa.Table) -> np.ndarray[Any, np.dtype[np.float64]]:
        columns = [floats(rows[name]) for name in names]
        return np.column_stack([np.ones(rows.num_rows), *columns])

    weights, *_ = np.linalg.lstsq(design(table), floats(table["label"]), rcond=None)

    def predict(rows: pa.Table) -> np.ndarray[Any, np.dtype[np.int64]]:
        return (design(rows) @ weights > 0.5).astype(np.int64)

    return predict


def test_rows_labelled_by_a_teacher(source: pa.Table, statistics: DatasetStatistics) -> None:
    teacher = fit_teacher(source)
    assert np.mean(teacher(source) == floats(source["label"])) > 0.85
    correlation = fit_correlation(source, statistics)
    generator = SyntheticGenerator.from_statistics(
        statistics, correlation=correlation, labeller=teacher
    )
    rows = generator.sample(ROWS, seed=2)
    assert rows.schema == source.schema
    features = rows.drop_columns(["label"])
    assert np.array_equal(rows["label"].to_numpy(), teacher(features))
    assert pc.mean(rows["label"]).as_py() == pytest.approx(
        pc.mean(source["label"]).as_py(), abs=0.05
    )


def test_rows_labelled_by_a_rule(statistics: DatasetStatistics, independent: pa.Table) -> None:
    def rule(rows: pa.Table) -> pa.Array:
        """Hand-written: members over 40 are positive. Same shape as a teacher."""
        return pc.and_(rows["member"], pc.greater(rows["age"], 40))

    generator = SyntheticGenerator.from_statistics(statistics, labeller=rule)
    rows = generator.sample(1000, seed=3)
    # The source label is an int, so the rule's booleans come back as 0/1.
    assert rows.schema.field("label").type == pa.int64()
    expected = pc.cast(rule(rows), pa.int64()).to_pylist()
    assert rows["label"].to_pylist() == expected
    assert 0 < sum(v for v in expected if v is not None) < 1000

    labelled = label_rows(independent, rule, name="target")
    assert labelled.column_names[-1] == "target"
    assert labelled.schema.field("target").type == pa.bool_()


def test_labeller_output_is_checked(statistics: DatasetStatistics) -> None:
    short = SyntheticGenerator.from_statistics(statistics, labeller=lambda rows: [1, 0])
    with pytest.raises(InvalidArgument, match="returned 2 labels for 10 rows"):
        short.sample(10, seed=0)
    words = SyntheticGenerator.from_statistics(
        statistics, labeller=lambda rows: ["yes"] * rows.num_rows
    )
    with pytest.raises(InvalidArgument, match="label 'label' must be int"):
        words.sample(10, seed=0)


@pytest.mark.parametrize("n", [0, -5, 1.5, True, "10"])
def test_bad_row_counts_are_rejected(statistics: DatasetStatistics, n: Any) -> None:
    with pytest.raises(InvalidArgument, match="n must be a positive integer") as error:
        SyntheticGenerator.from_statistics(statistics).sample(n, seed=0)
    assert "\n" not in str(error.value)


def test_bad_statistics_and_matrices_are_rejected(
    source: pa.Table, statistics: DatasetStatistics
) -> None:
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (DatasetStatistics(rows=0, features=()), {}, "no features"),
        (
            compute_statistics(source.select(["label"]).to_batches(), label="label"),
            {},
            "no features",
        ),
        (statistics, {"correlation": np.eye(3)}, r"must be 8 x 8, got shape \(3, 3\)"),
        (statistics, {"correlation": np.ones(8)}, "must be 8 x 8"),
        (statistics, {"correlation": [[1, 2], [3]]}, "not a matrix of numbers"),
        (
            statistics,
            {"correlation": np.triu(np.ones((8, 8)))},
            "finite, symmetric, with a unit diagonal",
        ),
        (statistics, {"correlation": 2 * np.eye(8)}, "with a unit diagonal"),
        (
            compute_statistics(source.to_batches()),
            {"labeller": len},
            "needs statistics with a label",
        ),
    ]
    for stats, options, message in cases:
        with pytest.raises(InvalidArgument, match=message) as error:
            SyntheticGenerator.from_statistics(stats, **options)
        assert "\n" not in str(error.value)
    with pytest.raises(InvalidArgument, match="seed must be an integer"):
        SyntheticGenerator.from_statistics(statistics).sample(5, seed=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="'device' of the statistics is not in the table"):
        fit_correlation(source.drop_columns(["device"]), statistics)
    with pytest.raises(InvalidArgument, match="column 'age'"):
        fit_correlation(source.set_column(0, "age", pa.array(["old"] * ROWS)), statistics)


def test_a_wide_table_samples_with_its_copula() -> None:
    rng = np.random.default_rng(0)
    wide = pa.table(
        {
            f"c{i}": rng.standard_normal(10_000) if i % 2 else rng.choice(list("abcdefgh"), 10_000)
            for i in range(20)
        }
    )
    statistics = compute_statistics(wide.to_batches())
    generator = SyntheticGenerator.from_statistics(
        statistics, correlation=fit_correlation(wide, statistics)
    )
    rows = generator.sample(100_000, seed=0)
    assert rows.shape == (100_000, 20)
