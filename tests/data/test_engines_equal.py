"""The Beam engine (DirectRunner) computes exactly what the local engine computes.

Beam reads files inside the pipeline, quarantines malformed rows per file and writes
the splits from the workers: each test compares with the local engine on the same
source (the same statistics, rows, quarantine and folder layout).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.data.engines import beam as beam_engine
from ratchet.data.engines.local import prepare_dataset
from ratchet.data.io import open_source
from ratchet.data.split import SPLITS, hash_split
from ratchet.data.stats import compute_statistics
from ratchet.data.transform import fit_transform
from ratchet.errors import InvalidArgument, NotFound


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


RUNNER_OPTIONS = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]


def generated(n: int, start: int = 0, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(start, start + n),
            "age": rng.integers(18, 90, n),
            "income": np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(size=n)),
            "city": pa.array(rng.choice(["oslo", "lima", "pune", "kyiv"], n)),
            "label": rng.integers(0, 2, n),
        }
    )


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("beam-files") / "data"
    folder.mkdir()
    for i, n in enumerate((1200, 700, 900)):
        pq.write_table(generated(n, start=i * 10_000, seed=i), folder / f"part-{i}.parquet")
    return folder


@pytest.fixture(scope="module")
def bad_csvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three CSV files: malformed rows in two of them, and one with a header only."""
    folder = tmp_path_factory.mktemp("beam-csv")
    header = "id,age,city,label"
    for f in range(3):
        cities = ("oslo", "lima")
        lines = [header, *(f"{f}{i:04d},{20 + i % 50},{cities[i % 2]},{i % 2}" for i in range(400))]
        if f == 0:
            lines[7] = "6,not-an-age,oslo,1"
        if f == 2:
            lines[3] = "2,30"  # too few fields
            lines[11] = "10,31,oslo,0,extra"  # too many
        (folder / f"part-{f}.csv").write_text("\n".join(lines) + "\n")
    (folder / "part-3.csv").write_text(header + "\n")
    return folder


def by_id(t: pa.Table) -> pa.Table:
    return t.sort_by("id")


def assert_same_rows(left: pa.Table, right: pa.Table) -> None:
    """The same rows whatever their order; floats to rounding (statistics merge in Beam's order)."""
    assert left.schema == right.schema
    left, right = by_id(left), by_id(right)
    for name in left.column_names:
        a, b = left.column(name), right.column(name)
        if pa.types.is_floating(a.type):
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)
        else:
            assert a.equals(b), name


def test_files_are_read_inside_the_pipeline(parquet_folder: Path, tmp_path: Path) -> None:
    local = compute_statistics(open_source(parquet_folder).batches(), label="label")
    beam = beam_engine.compute_statistics(
        parquet_folder, label="label", options=RUNNER_OPTIONS, errors_path=tmp_path / "errors"
    )
    assert beam.rows == 2800
    assert_close(beam.to_dict(), local.to_dict())
    glob = beam_engine.compute_statistics(str(parquet_folder / "part-*.parquet"), label="label")
    assert_close(glob.to_dict(), local.to_dict())


def test_splits_of_many_files_equal_the_local_split(parquet_folder: Path) -> None:
    parts = beam_engine.split_and_transform(parquet_folder, key="id")
    whole = pa.Table.from_batches(list(open_source(parquet_folder).batches()))
    index = hash_split(whole, key="id")
    for position in range(3):
        beam = pa.concat_tables([rows for split, rows in parts if split == position])
        local = whole.filter(pa.array(index == position))
        # In the order the files were read: exactly the local rows, not only the same set
        # (compared in pandas, where NaN equals NaN).
        assert beam.to_pandas().equals(local.to_pandas()), position


def test_beam_export_matches_the_local_engine(parquet_folder: Path, tmp_path: Path) -> None:
    local = prepare_dataset(parquet_folder, tmp_path / "local", label="label", key="id")
    beam = beam_engine.prepare_dataset(
        parquet_folder, tmp_path / "beam", label="label", key="id", shard_rows=500
    )
    assert beam.rows == local.rows
    assert sum(beam.rows.values()) == 2800
    assert_close(beam.statistics.to_dict(), local.statistics.to_dict())
    assert_close(beam.train_statistics.to_dict(), local.train_statistics.to_dict())
    assert beam.schema == local.schema
    for name in (*SPLITS, "raw_test"):
        written = pq.read_table(beam.folder / name)
        assert_same_rows(written, pq.read_table(local.folder / name))
        assert all(pq.read_metadata(p).num_rows <= 500 for p in beam.shards[name])
        assert sorted(beam.shards[name]) == sorted((beam.folder / name).glob("*.parquet"))
    assert not list(beam.folder.rglob("*.tmp"))
    for name in ("statistics.json", "train_statistics.json", "schema.yaml", "transform.json"):
        assert (beam.folder / name).exists()
    assert json.loads((beam.folder / "splits.json").read_text()) == dict(local.rows)
    assert beam.quarantine.count == 0 and beam.quarantine.path is None


def test_malformed_rows_are_quarantined_per_file_under_beam(bad_csvs: Path, tmp_path: Path) -> None:
    source = str(bad_csvs / "*.csv")
    local = prepare_dataset(source, tmp_path / "local", label="label", key="id")
    beam = beam_engine.prepare_dataset(source, tmp_path / "beam", label="label", key="id")
    assert local.quarantine.count == beam.quarantine.count == 3
    assert beam.rows == local.rows and sum(beam.rows.values()) == 1197
    errors = beam.folder / "errors"
    assert beam.quarantine.path == errors
    files = sorted(p.name for p in errors.iterdir())
    assert files == ["00000-part-0.csv.errors.jsonl", "00002-part-2.csv.errors.jsonl"]
    records = [json.loads(line) for line in (errors / files[1]).read_text().splitlines()]
    assert sorted(r["line"] for r in records) == [4, 12]
    assert all(r["file"].endswith("part-2.csv") for r in records)
    [record] = [json.loads(line) for line in (errors / files[0]).read_text().splitlines()]
    assert record["line"] == 8 and "age" in record["error"]
    for name in (*SPLITS, "raw_test"):
        assert_same_rows(pq.read_table(beam.folder / name), pq.read_table(local.folder / name))


def test_the_error_budget_holds_for_the_whole_source(bad_csvs: Path, tmp_path: Path) -> None:
    source = str(bad_csvs / "*.csv")
    with pytest.raises(InvalidArgument, match="error budget of 2"):
        beam_engine.prepare_dataset(source, tmp_path / "a", label="label", error_budget=2)
    with pytest.raises(InvalidArgument, match="3 of 1200 rows malformed"):
        beam_engine.compute_statistics(source, errors_path=tmp_path / "e", error_budget=0.001)
    stats = beam_engine.compute_statistics(source, errors_path=tmp_path / "f", error_budget=3)
    assert stats.rows == 1197
    assert len(list((tmp_path / "f").glob("*.errors.jsonl"))) == 2


def test_tables_in_memory_go_through_create(tmp_path: Path) -> None:
    frame = generated(1500).to_pandas()
    local = prepare_dataset(frame, tmp_path / "local", label="label", ratios=(1.0, 0.0, 0.0))
    beam = beam_engine.prepare_dataset(
        frame, tmp_path / "beam", label="label", ratios=(1.0, 0.0, 0.0)
    )
    assert beam.rows == local.rows == {"train": 1500, "validation": 0, "test": 0}
    for name in (*SPLITS, "raw_test"):
        # An empty split still gets one shard, with the schema the local engine gives it.
        assert_same_rows(pq.read_table(beam.folder / name), pq.read_table(local.folder / name))
        assert len(beam.shards[name]) == 1
    stats = beam_engine.compute_statistics(pd.DataFrame({"x": [1, 2, 3]}))
    assert stats.rows == 3


def test_bad_input_fails_with_one_clear_error(parquet_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="label column 'target'"):
        beam_engine.prepare_dataset(parquet_folder, tmp_path / "a", label="target")
    with pytest.raises(InvalidArgument, match="3 ratios"):
        beam_engine.prepare_dataset(parquet_folder, tmp_path / "a", label="label", ratios=[1, 0])
    with pytest.raises(InvalidArgument, match="shard_rows"):
        beam_engine.prepare_dataset(parquet_folder, tmp_path / "a", label="label", shard_rows=0)
    with pytest.raises(NotFound, match="does not exist"):
        beam_engine.compute_statistics(tmp_path / "missing.csv")
    header_only = tmp_path / "empty.csv"
    header_only.write_text("a,label\n")
    with pytest.raises(InvalidArgument, match="no rows"):
        beam_engine.compute_statistics(header_only)
    odd = tmp_path / "odd"
    odd.mkdir()
    pq.write_table(generated(10), odd / "a.parquet")
    pq.write_table(generated(10).append_column("extra", pa.array(range(10))), odd / "b.parquet")
    with pytest.raises(InvalidArgument, match=r"b\.parquet has columns"):
        beam_engine.compute_statistics(odd)
    (odd / "b.parquet").unlink()
    pq.write_table(generated(10).drop_columns(["city"]), odd / "c.parquet")
    with pytest.raises(InvalidArgument, match=r"city.*c\.parquet"):
        beam_engine.compute_statistics(odd)


def test_a_file_of_bad_rows_is_quarantined_but_no_valid_row_at_all_is_an_error(
    tmp_path: Path,
) -> None:
    source = tmp_path / "bad"
    source.mkdir()
    (source / "a.csv").write_text("x,label\n1,0\n2,1\n")
    (source / "b.csv").write_text("x,label\n" + "oops,1\n" * 30)
    # 'x' is numeric from the first file, so every row of b.csv is quarantined: that file
    # alone is no error, the source has valid rows.
    stats = beam_engine.compute_statistics(source, errors_path=tmp_path / "errors")
    assert stats.rows == 2
    (source / "a.csv").write_text("x,label\n")
    (source / "b.csv").write_text("x,label\n" + "1,2,3\n" * 30)
    with pytest.raises(InvalidArgument, match="no valid rows: all 30 are quarantined"):
        beam_engine.compute_statistics(source, errors_path=tmp_path / "errors2")
