"""Drift between statistics: TFDV's L-infinity and Jensen-Shannon, PSI, thresholds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ratchet.data.drift import JENSEN_SHANNON, L_INFINITY, compare, jensen_shannon, psi
from ratchet.data.stats import DatasetStatistics, compute_statistics
from ratchet.errors import InvalidArgument


def stats(table: pa.Table) -> DatasetStatistics:
    return compute_statistics(table.to_batches(), threads=1)


def data(
    n: int, shift: float = 0.0, colors: tuple[str, ...] = ("red", "blue"), seed: int = 0
) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": rng.normal(loc=shift, size=n),
            "color": pa.array(rng.choice(colors, size=n)),
        }
    )


def test_identical_data_has_no_drift() -> None:
    base = stats(data(5000))
    report = compare(base, base)
    assert not report.drifted
    assert {f.name: f.distance for f in report.features} == {"x": 0.0, "color": 0.0}
    assert {f.metric for f in report.features} == {JENSEN_SHANNON, L_INFINITY}


def test_samples_of_one_distribution_stay_under_the_defaults() -> None:
    report = compare(stats(data(20000, seed=1)), stats(data(20000, seed=2)))
    assert not report.drifted, report


def test_shifted_numbers_and_new_categories_drift() -> None:
    report = compare(stats(data(20000)), stats(data(20000, shift=2.0, colors=("red", "green"))))
    by_name = {f.name: f for f in report.features}
    assert report.drifted
    assert by_name["x"].drifted and by_name["x"].distance > 0.3
    assert by_name["color"].drifted
    assert by_name["color"].distance == pytest.approx(0.5, abs=0.03)  # blue 0.5 -> 0
    assert by_name["x"].psi > 0.2


def test_l_infinity_is_the_largest_share_change() -> None:
    old = pa.table({"c": ["a"] * 60 + ["b"] * 40})
    new = pa.table({"c": ["a"] * 30 + ["b"] * 70})
    [feature] = compare(stats(old), stats(new)).features
    assert feature.distance == pytest.approx(0.3)


def test_jensen_shannon_and_psi_values() -> None:
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert jensen_shannon(p, q) == pytest.approx(1.0)
    assert jensen_shannon(p, p) == 0.0
    even = np.array([0.5, 0.5])
    assert psi(even, np.array([0.6, 0.4])) == pytest.approx(
        0.1 * np.log(0.6 / 0.5) + (-0.1) * np.log(0.4 / 0.5)
    )


def test_thresholds_per_feature_and_metric_and_json_shape() -> None:
    base, shifted = stats(data(5000)), stats(data(5000, shift=0.3))
    strict = compare(base, shifted, thresholds={"x": 0.0})
    assert next(f for f in strict.features if f.name == "x").drifted
    lenient = compare(base, shifted, metric_thresholds={JENSEN_SHANNON: 1.0})
    assert not next(f for f in lenient.features if f.name == "x").drifted
    shape = strict.to_dict()
    assert set(shape) == {"drifted", "features"}
    assert {"name", "metric", "distance", "threshold", "drifted"} <= set(shape["features"][0])
    with pytest.raises(InvalidArgument, match="threshold"):
        compare(base, shifted, thresholds={"x": -1})


def test_a_missing_feature_is_reported_as_drifted() -> None:
    base = stats(pa.table({"a": [1.0, 2.0], "b": ["x", "y"]}))
    current = stats(pa.table({"a": [1.0, 2.0]}))
    report = compare(base, current)
    assert report.drifted
    assert [(f.name, f.metric) for f in report.features if f.drifted] == [("b", "missing")]
