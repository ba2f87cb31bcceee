"""The local engine end to end: split, statistics, schema, transform and sharded export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ratchet.data.engines import local
from ratchet.data.engines.local import prepare_dataset
from ratchet.data.export import write_shards
from ratchet.data.schema import Schema
from ratchet.data.transform import Transform
from ratchet.errors import InvalidArgument, NotFound


def generated(n: int = 5000) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table(
        {
            "id": np.arange(n),
            "age": rng.integers(18, 90, size=n),
            "income": rng.lognormal(size=n),
            "city": pa.array(rng.choice(["paris", "oslo", "lima", "pune"], size=n)),
            "label": rng.integers(0, 2, size=n),
        }
    )


def test_prepare_writes_every_split_and_describes_it(tmp_path: Path) -> None:
    source = tmp_path / "data.parquet"
    pq.write_table(generated(), source)
    out = prepare_dataset(source, tmp_path / "v1", label="label", key="id", shard_rows=1000)
    assert sum(out.rows.values()) == 5000
    assert out.rows["train"] == pytest.approx(4000, abs=150)
    assert out.train_statistics.rows == out.rows["train"]  # fitted on training rows only
    assert out.statistics.rows == 5000
    for name in ("train", "validation", "test"):
        table = pq.read_table(out.folder / name)
        assert table.num_rows == out.rows[name]
        assert table.column_names == ["id", "age", "income", "city", "label"]
    assert len(out.shards["train"]) == 4 + (out.rows["train"] > 4000)
    raw = pq.read_table(out.folder / "raw_test")
    assert raw.num_rows == out.rows["test"]
    assert raw.schema.field("city").type == pa.string()  # untransformed
    assert Schema.load(out.folder / "schema.yaml") == out.schema
    saved = Transform.from_json((out.folder / "transform.json").read_text())
    assert saved == out.transform
    train_ages = pq.read_table(out.folder / "train").column("age").to_numpy()
    assert train_ages.mean() == pytest.approx(0.0, abs=1e-4)


def test_the_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    pacsv.write_csv(generated(2000), source)
    first = prepare_dataset(source, tmp_path / "a", label="label", key="id")
    second = prepare_dataset(source, tmp_path / "b", label="label", key="id")
    for name in ("train", "validation", "test", "raw_test"):
        left = pq.read_table(first.folder / name)
        right = pq.read_table(second.folder / name)
        assert left.equals(right)
    ids_test = set(pq.read_table(first.folder / "raw_test").column("id").to_pylist())
    ids_train = set(pq.read_table(first.folder / "train").column("id").to_pylist())
    assert not ids_test & ids_train


def test_threads_change_nothing_in_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so each thread gets several and they finish out of order.
    monkeypatch.setattr(local, "BATCH_ROWS", 300)
    source = tmp_path / "data.parquet"
    pq.write_table(generated(5000), source)
    outputs = [
        prepare_dataset(source, tmp_path / f"t{n}", label="label", shard_rows=700, threads=n)
        for n in (1, 2, 3)
    ]
    for out in outputs[1:]:
        assert out.statistics == outputs[0].statistics
        assert out.train_statistics == outputs[0].train_statistics
        assert out.transform == outputs[0].transform
        assert contents(out.folder) == contents(outputs[0].folder)
    with pytest.raises(InvalidArgument, match="threads"):
        prepare_dataset(source, tmp_path / "t0", label="label", threads=0)


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_malformed_rows_are_quarantined_not_lost(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    lines = ["id,age,city,label"] + [f"{i},{20 + i % 50},oslo,{i % 2}" for i in range(300)]
    lines[5] = "4,not-an-age,oslo,0"
    lines[9] = "8,30"  # too few fields
    source.write_text("\n".join(lines) + "\n")
    out = prepare_dataset(source, tmp_path / "v", label="label", key="id")
    assert out.quarantine.count == 2
    assert sum(out.rows.values()) == 298
    assert out.quarantine.path is not None and out.quarantine.path.exists()
    with pytest.raises(InvalidArgument, match="budget"):
        prepare_dataset(source, tmp_path / "w", label="label", error_budget=1)


def test_bad_pipeline_input(tmp_path: Path) -> None:
    source = tmp_path / "data.parquet"
    pq.write_table(generated(100), source)
    with pytest.raises(NotFound, match="label column 'target'"):
        prepare_dataset(source, tmp_path / "v", label="target")
    with pytest.raises(InvalidArgument, match="3 ratios"):
        prepare_dataset(source, tmp_path / "v", label="label", ratios=[0.5, 0.5])
    empty = tmp_path / "empty.csv"
    empty.write_text("a,label\n")
    with pytest.raises(InvalidArgument):
        prepare_dataset(empty, tmp_path / "e", label="label")


def test_shards_respect_the_row_bound(tmp_path: Path) -> None:
    table = generated(1050)
    paths = write_shards(table.to_batches(max_chunksize=100), tmp_path / "s", shard_rows=500)
    assert [pq.read_metadata(p).num_rows for p in paths] == [500, 500, 50]
    assert not list((tmp_path / "s").glob("*.tmp"))
