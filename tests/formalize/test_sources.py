"""Watched sources: new files of a folder or glob, new rows of a query on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from ratchet.data.engines.local import prepare_dataset
from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound
from ratchet.formalize.sources import (
    Batch,
    FileSource,
    SqlSource,
    decode_cursor,
    encode_cursor,
)


@dataclass(frozen=True)
class Table:
    """A uniquely named table of trips in a real database, and a way to add rows to it."""

    url: str
    name: str
    insert: Callable[[range], None]

    def source(self, folder: Path, cursor_column: str = "id") -> SqlSource:
        return SqlSource(
            self.url,
            f"SELECT * FROM {self.name};",
            cursor_column=cursor_column,
            folder=folder,
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def trips(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Table]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
    else:
        url = request.getfixturevalue("pg_server")
    name = f"trips_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, at TIMESTAMP, "
            "distance DOUBLE PRECISION, tip VARCHAR(3))"
        )

    def insert(ids: range) -> None:
        rows = [
            {
                "id": i,
                # SQLite has no timestamp type: ISO text, as applications write there.
                "at": at if request.param == "postgresql" else at.isoformat(" "),
                "distance": i * 1.5,
                "tip": "yes" if i % 3 else "no",
            }
            for i in ids
            for at in [datetime(2026, 1, 1 + i // 24, i % 24)]
        ]
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"INSERT INTO {name} VALUES (:id, :at, :distance, :tip)"),
                rows,
            )

    try:
        yield Table(url, name, insert)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {name}")
        engine.dispose()


def ids(batch: Batch) -> list[int]:
    """The rows of a batch, by their distance (the id may be the cursor, left out)."""
    return [round(d / 1.5) for d in pq.read_table(batch.path).column("distance").to_pylist()]


@pytest.mark.parametrize("cursor_column", ["id", "at"])
def test_sql_source_takes_all_rows_then_only_new_ones(
    trips: Table, tmp_path: Path, cursor_column: str
) -> None:
    source = trips.source(tmp_path / "incoming", cursor_column)
    trips.insert(range(1, 6))
    [first] = source.new_batches([])
    assert ids(first) == [1, 2, 3, 4, 5]
    assert first.source == source.key and first.path.parent == tmp_path / "incoming"
    assert source.new_batches([first]) == []  # no new rows: no batch
    trips.insert(range(6, 9))
    [second] = source.new_batches([first])
    assert ids(second) == [6, 7, 8]
    assert second.path != first.path
    kept = ["id", "at", "distance", "tip"]
    kept.remove(cursor_column)  # an ever-growing column would drift as a feature
    assert pq.read_table(second.path).column_names == kept
    assert not list((tmp_path / "incoming").glob(".*"))  # no partial file left behind


def test_a_retried_batch_reaches_the_new_rows_too_and_overwrites_its_file(
    trips: Table, tmp_path: Path
) -> None:
    source = trips.source(tmp_path / "incoming")
    trips.insert(range(1, 3))
    [first] = source.new_batches([])
    trips.insert(range(3, 5))
    [crashed] = source.new_batches([first])  # its pass never completed
    trips.insert(range(5, 6))
    [retried] = source.new_batches([first])
    assert retried.path == crashed.path and ids(retried) == [3, 4, 5]


def test_the_cursor_belongs_to_the_database_and_column_not_the_query_text(
    trips: Table, tmp_path: Path
) -> None:
    trips.insert(range(1, 4))
    [first] = trips.source(tmp_path).new_batches([])
    narrower = SqlSource(
        trips.url,
        f"SELECT id, distance, tip FROM {trips.name} WHERE distance > 0 -- all trips",
        cursor_column="id",
        folder=tmp_path,
    )
    trips.insert(range(4, 5))
    [second] = narrower.new_batches([first])
    assert ids(second) == [4]
    other = Batch(Path("elsewhere.parquet"), "sqlite:///other.db#id", "int:100")
    assert ids(narrower.new_batches([other])[0]) == [1, 2, 3, 4]  # another source's cursor


def test_a_batch_is_read_by_the_data_pipeline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER, distance REAL, tip TEXT)")
        conn.execute(
            sa.text("INSERT INTO t VALUES (:id, :d, :tip)"),
            [{"id": i, "d": i * 0.5, "tip": "yes" if i % 2 else "no"} for i in range(300)],
        )
    engine.dispose()
    source = SqlSource(url, "SELECT * FROM t", cursor_column="id", folder=tmp_path / "in")
    [batch] = source.new_batches([])
    prepared = prepare_dataset(batch.path, tmp_path / "dataset", label="tip", threads=1)
    assert sum(prepared.rows.values()) == 300


@pytest.mark.parametrize(
    "value",
    [
        42,
        2.5,
        Decimal("10.25"),
        "b-0007",
        date(2026, 1, 2),
        datetime(2026, 1, 2, 3, 4, 5, 6),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    ],
)
def test_cursor_values_keep_their_type_through_the_store(value: Any) -> None:
    decoded = decode_cursor(encode_cursor(value))
    assert decoded == value and type(decoded) is type(value)


def test_cursor_values_that_cannot_compare_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="not bytes"):
        encode_cursor(b"\x00")
    with pytest.raises(InvalidArgument, match="not bool"):
        encode_cursor(True)
    with pytest.raises(InvalidArgument, match="cannot read the recorded cursor"):
        decode_cursor("uuid:0")


def test_sql_source_mistakes_are_named(trips: Table, tmp_path: Path) -> None:
    everything = f"SELECT * FROM {trips.name}"

    def poll(url: str = trips.url, query: str = everything, cursor: str = "id") -> list[Batch]:
        return SqlSource(url, query, cursor_column=cursor, folder=tmp_path).new_batches([])

    with pytest.raises(InvalidArgument, match="no column 'trip_id' to use as the cursor"):
        poll(cursor="trip_id")
    with pytest.raises(InvalidArgument, match="query failed on"):
        poll(query="SELECT * FROM no_such_table")
    with pytest.raises(InvalidArgument, match="is not a database URL"):
        poll(url="nonsense:/")
    with pytest.raises(InvalidArgument, match="cannot open nonsense://x"):
        poll(url="nonsense://x")
    with pytest.raises(InvalidArgument, match="query is empty"):
        poll(query="  ")
    with pytest.raises(NotFound, match="does not exist"):
        poll(url=f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def test_an_unreachable_server_is_a_failed_precondition(tmp_path: Path) -> None:
    source = SqlSource(
        "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2",
        "SELECT 1 AS id",
        cursor_column="id",
        folder=tmp_path,
    )
    with pytest.raises(FailedPrecondition, match="cannot connect to postgresql"):
        source.new_batches([])


def test_a_file_source_yields_each_file_until_it_is_passed(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for name in ("2026-02.csv", "2026-01.parquet", "notes.txt"):
        (incoming / name).write_text("x\n")
    folder = FileSource(str(incoming))
    first = folder.new_batches([])
    assert [b.path.name for b in first] == ["2026-01.parquet", "2026-02.csv"]
    assert folder.new_batches(first[:1]) == first[1:]
    assert FileSource(str(incoming / "*.csv")).files() == [incoming / "2026-02.csv"]
    assert FileSource(str(tmp_path / "later" / "*.csv")).new_batches([]) == []  # none yet
    with pytest.raises(NotFound, match="does not exist"):
        FileSource(str(tmp_path / "typo")).new_batches([])
