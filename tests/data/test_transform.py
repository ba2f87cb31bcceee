"""Transforms fitted on training statistics and applied identically to batches and records."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ratchet.data.stats import compute_statistics
from ratchet.data.transform import (
    EMBEDDING,
    ONE_HOT,
    Transform,
    embedding_dim,
    fit_transform,
)
from ratchet.errors import InvalidArgument, NotFound


def training() -> pa.Table:
    rng = np.random.default_rng(0)
    n = 1000
    return pa.table(
        {
            "age": rng.integers(18, 80, size=n),
            "income": rng.lognormal(size=n),
            "city": pa.array(rng.choice([f"city-{i}" for i in range(80)], size=n)),
            "plan": pa.array(rng.choice(["free", "pro"], size=n)),
            "churned": rng.integers(0, 2, size=n),
        }
    )


def fitted(**options: object) -> Transform:
    stats = compute_statistics(training().to_batches(), label="churned", top_k=200, threads=1)
    return fit_transform(stats, **options)  # type: ignore[arg-type]


def test_zscore_vocabularies_and_groups() -> None:
    transform = fitted()
    out = transform.apply(training())
    assert out.column_names == ["age", "income", "city", "plan", "churned"]
    age = out.column("age").to_numpy()
    assert age.mean() == pytest.approx(0.0, abs=1e-5)
    assert age.std() == pytest.approx(1.0, abs=1e-3)
    plan = transform.feature("plan")
    assert (plan.group, plan.width) == (ONE_HOT, 3)  # two values + one OOV bucket
    city = transform.feature("city")
    assert city.group == EMBEDDING and city.width == 81
    assert city.embedding_dim == embedding_dim(81)
    groups = transform.groups()
    assert [g["name"] for g in groups["numeric"]] == ["age", "income"]
    assert out.column("churned").equals(training().column("churned"))


def test_unseen_and_missing_categories_go_to_the_oov_bucket() -> None:
    transform = fitted(oov_buckets=1)
    plan = transform.feature("plan")
    vocabulary = plan.params["vocabulary"]
    out = transform.apply(
        pa.table(
            {
                "age": [30, None],
                "income": [1.0, float("nan")],
                "city": ["city-1", "atlantis"],
                "plan": ["enterprise", None],
                "churned": [0, 1],
            }
        )
    )
    assert out.column("plan").to_pylist() == [len(vocabulary), len(vocabulary)]
    assert out.column("city").to_pylist()[1] == 80
    assert out.column("age").to_pylist()[1] == pytest.approx(0.0, abs=1e-5)  # the mean


def test_record_and_batch_give_the_same_features_and_json_round_trip() -> None:
    transform = fitted(overrides={"income": "log", "age": "bucketize"})
    restored = Transform.from_json(transform.to_json())
    assert restored == transform and restored.version == transform.version
    data = training().slice(0, 5)
    batch = restored.apply(data).to_pylist()
    for raw, expected in zip(data.to_pylist(), batch, strict=True):
        expected.pop("churned")  # serving records carry no label
        assert transform.apply_record(raw) == expected
    ages = restored.apply(training()).column("age").to_numpy()
    assert set(np.unique(ages)) <= set(range(11))


def test_other_operations() -> None:
    minmax = fitted(numeric="minmax").apply(training()).column("income").to_numpy()
    assert minmax.min() == pytest.approx(0.0) and minmax.max() == pytest.approx(1.0)
    hashed = fitted(overrides={"city": "hash"}, hash_buckets=16)
    ids = hashed.apply(training()).column("city").to_numpy()
    assert ids.min() >= 0 and ids.max() < 16
    assert hashed.feature("city").group == ONE_HOT


def test_bad_transform_requests() -> None:
    with pytest.raises(InvalidArgument, match="unknown transform"):
        fitted(overrides={"age": "sqrt"})
    with pytest.raises(NotFound, match="'ghost'"):
        fitted(overrides={"ghost": "log"})
    with pytest.raises(InvalidArgument, match="no numeric values"):
        fitted(overrides={"city": "zscore"})
    transform = fitted()
    with pytest.raises(InvalidArgument, match="missing field 'plan'"):
        transform.apply_record({"age": 1, "income": 1.0, "city": "x"})
    with pytest.raises(NotFound, match="'plan'"):
        transform.apply(training().drop_columns(["plan"]))
    with pytest.raises(InvalidArgument, match="not a serialized transform"):
        Transform.from_dict({"features": [{"nope": 1}]})
