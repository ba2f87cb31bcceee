"""The Beam engine (DirectRunner) computes exactly what the local functions compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.data.engines import beam as beam_engine
from ratchet.data.io import open_source
from ratchet.data.split import hash_split
from ratchet.data.stats import compute_statistics
from ratchet.data.transform import fit_transform


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(11)
    n = 3000
    path = tmp_path_factory.mktemp("beam") / "data.parquet"
    pq.write_table(
        pa.table(
            {
                "id": np.arange(n),
                "age": rng.integers(18, 90, n),
                "income": np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(size=n)),
                "city": pa.array(rng.choice(["oslo", "lima", "pune", None], n)),
                "label": rng.integers(0, 2, n),
            }
        ),
        path,
        row_group_size=500,
    )
    return path


def test_statistics_are_identical(source: Path) -> None:
    local = compute_statistics(open_source(source).batches(), label="label")
    beam = beam_engine.compute_statistics(source, label="label")
    assert beam.to_dict() == local.to_dict()


def test_statistics_agree_whatever_the_sharding(source: Path) -> None:
    # Other shards sum floats in another order: counts and values are exact, moments agree
    # to rounding.
    local = compute_statistics(open_source(source, batch_rows=700).batches(), label="label")
    beam = beam_engine.compute_statistics(source, label="label")
    assert_close(beam.to_dict(), local.to_dict())


def assert_close(left: object, right: object, path: str = "") -> None:
    if isinstance(left, dict) and isinstance(right, dict):
        assert left.keys() == right.keys(), path
        for key in left:
            assert_close(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        assert len(left) == len(right), path
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_close(a, b, f"{path}[{i}]")
    elif isinstance(left, float) and isinstance(right, float):
        assert left == pytest.approx(right, rel=1e-9, abs=1e-12), path
    else:
        assert left == right, path


def test_splits_and_transforms_are_identical(source: Path) -> None:
    stats = compute_statistics(open_source(source).batches(), label="label", top_k=100)
    transform = fit_transform(stats)
    results = beam_engine.split_and_transform(source, transform, key="id")
    table = pa.Table.from_batches(list(open_source(source).batches()))
    index = hash_split(table, key="id")
    for position in range(3):
        local = transform.apply(table.filter(pa.array(index == position)))
        beam = pa.concat_tables([rows for split, rows in results if split == position])
        assert beam.equals(local), position
