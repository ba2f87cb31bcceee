"""Readers: every source kind, streaming, type fixing, quarantine, budgets and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from ratchet.data.io import Source, open_source
from ratchet.errors import InvalidArgument, NotFound


def read_all(source: Source) -> pa.Table:
    return pa.Table.from_batches(list(source.batches()), schema=source.schema)


def errors_of(source: Source) -> list[dict[str, object]]:
    assert source.quarantine.path is not None
    return [json.loads(line) for line in source.quarantine.path.read_text().splitlines()]


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_file_infers_types(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", "x,y,z\n1,a,1.5\n2,b,\n")
    source = open_source(path)
    table = read_all(source)
    assert source.schema == pa.schema([("x", pa.int64()), ("y", pa.string()), ("z", pa.float64())])
    assert table.to_pydict() == {"x": [1, 2], "y": ["a", "b"], "z": [1.5, None]}
    assert source.rows_read == 2
    assert source.quarantine.count == 0 and source.quarantine.path is None


def test_csv_glob_and_folder_read_every_file(tmp_path: Path) -> None:
    for i in range(3):
        write_csv(tmp_path / f"part-{i}.csv", f"x\n{i}\n{i + 10}\n")
    by_glob = read_all(open_source(str(tmp_path / "part-*.csv")))
    by_folder = read_all(open_source(tmp_path))
    assert sorted(by_glob["x"].to_pylist()) == [0, 1, 2, 10, 11, 12]
    assert by_folder.equals(by_glob)


def test_large_csv_streams_in_several_batches(tmp_path: Path) -> None:
    n = 200_000
    pacsv.write_csv(
        pa.table({"i": range(n), "s": [str(i % 7) for i in range(n)]}), tmp_path / "b.csv"
    )
    source = open_source(tmp_path / "b.csv", batch_rows=50_000)
    sizes = [batch.num_rows for batch in source.batches()]
    assert len(sizes) == 4 and set(sizes) == {50_000}
    assert source.rows_read == n


def test_columns_fix_types(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", "x,y\n1,007\n2,010\n")
    source = open_source(path, columns={"x": pa.float32(), "y": pa.string()})
    assert source.schema == pa.schema([("x", pa.float32()), ("y", pa.string())])
    assert read_all(source).to_pydict() == {"x": [1.0, 2.0], "y": ["007", "010"]}


def test_columns_naming_an_unknown_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", "x\n1\n")
    with pytest.raises(InvalidArgument, match="names nope"):
        open_source(path, columns={"nope": pa.int64()})


def test_malformed_rows_are_quarantined_with_line_numbers(tmp_path: Path) -> None:
    text = "x,y\n1,a\n2\nthree,c\n4,d,extra\n5,e\nNA,f\n"
    path = write_csv(tmp_path / "bad.csv", text)
    source = open_source(path, columns={"x": pa.int64()}, errors_path=tmp_path / "out")
    table = read_all(source)
    assert table.to_pydict() == {"x": [1, 5, None], "y": ["a", "e", "f"]}
    assert source.quarantine.count == 3
    assert source.quarantine.path == tmp_path / "out" / "bad.errors.jsonl"
    errors = sorted(errors_of(source), key=lambda e: e["line"])  # type: ignore[arg-type, return-value]
    assert [e["line"] for e in errors] == [3, 4, 5]
    assert errors[0]["row"] == "2" and "expected 2 fields, got 1" in str(errors[0]["error"])
    assert errors[1]["row"] == {"x": "three", "y": "c"} and "'x'" in str(errors[1]["error"])
    assert errors[2]["row"] == "4,d,extra"


def test_type_errors_across_batches_keep_line_numbers(tmp_path: Path) -> None:
    lines = ["x"] + [str(i) for i in range(1, 1001)]
    lines[500] = "oops"  # line 501 of the file
    lines[900] = "1,2"  # line 901
    path = write_csv(tmp_path / "c.csv", "\n".join(lines) + "\n")
    errors_file = tmp_path / "errs.jsonl"
    source = open_source(path, columns={"x": pa.int64()}, batch_rows=64, errors_path=errors_file)
    table = read_all(source)
    assert table.num_rows == 998 and 500 not in table["x"].to_pylist()
    assert sorted(e["line"] for e in errors_of(source)) == [501, 901]  # type: ignore[type-var]
    assert source.quarantine.path == tmp_path / "errs.jsonl"


def test_value_beyond_the_first_block_that_does_not_fit_the_inferred_type(tmp_path: Path) -> None:
    n = 300_000  # about 2 MB: more than pyarrow's 1 MB first block
    path = write_csv(tmp_path / "late.csv", "x\n" + "\n".join(map(str, range(n))) + "\nlate\n7\n")
    source = open_source(path)
    assert source.schema.field("x").type == pa.int64()
    assert read_all(source).num_rows == n + 1
    assert [(e["line"], e["row"]) for e in errors_of(source)] == [(n + 2, {"x": "late"})]


def test_default_errors_file_is_named_after_the_source(tmp_path: Path) -> None:
    source = open_source(write_csv(tmp_path / "data.csv", "x\n1\nz\n2\n"), columns={"x": pa.int8()})
    read_all(source)
    assert source.quarantine.path is not None
    assert source.quarantine.path.name == "data.errors.jsonl"


@pytest.mark.parametrize("budget", [0.15, 1])
def test_error_budget_raises_after_writing_errors(tmp_path: Path, budget: float) -> None:
    text = "x\n" + "\n".join(["1", "2", "bad", "3", "bad", "4", "5", "6", "7", "8"]) + "\n"
    source = open_source(
        write_csv(tmp_path / "d.csv", text),
        columns={"x": pa.int64()},
        errors_path=tmp_path,
        error_budget=budget,
    )
    with pytest.raises(InvalidArgument, match=r"2 .*error budget.*d\.errors\.jsonl") as info:
        read_all(source)
    assert "\n" not in str(info.value)
    assert len(errors_of(source)) == 2 and source.quarantine.count == 2


def test_error_budget_not_exceeded(tmp_path: Path) -> None:
    text = "x\n1\nbad\n" + "\n".join(str(i) for i in range(20)) + "\n"
    source = open_source(
        write_csv(tmp_path / "e.csv", text), columns={"x": pa.int64()}, error_budget=0.1
    )
    assert read_all(source).num_rows == 21
    assert source.quarantine.count == 1


@pytest.mark.parametrize("budget", [0.0, 1.0, -1, True, "5"])
def test_bad_error_budget(tmp_path: Path, budget: object) -> None:
    with pytest.raises(InvalidArgument, match="error_budget"):
        open_source(write_csv(tmp_path / "a.csv", "x\n1\n"), error_budget=budget)  # type: ignore[arg-type]


def test_parquet_file_folder_and_glob(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"a": [i, i + 10], "b": ["u", "v"]}), folder / f"p{i}.parquet")
    one = read_all(open_source(folder / "p0.parquet"))
    assert one.to_pydict() == {"a": [0, 10], "b": ["u", "v"]}
    by_folder = open_source(folder)
    assert sorted(read_all(by_folder)["a"].to_pylist()) == [0, 1, 2, 10, 11, 12]
    assert by_folder.rows_read == 6
    assert read_all(open_source(str(folder / "*.parquet"))).num_rows == 6


def test_parquet_with_columns_quarantines_values_that_do_not_cast(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": ["1", "x", "3"]}), tmp_path / "s.parquet")
    source = open_source(tmp_path / "s.parquet", columns={"a": pa.int32()}, errors_path=tmp_path)
    assert read_all(source)["a"].to_pylist() == [1, 3]
    assert [(e["line"], e["row"]) for e in errors_of(source)] == [(2, {"a": "x"})]


def test_parquet_streams_in_batches(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": range(10_000)}), tmp_path / "big.parquet", row_group_size=3000)
    source = open_source(tmp_path / "big.parquet", batch_rows=4000)
    assert [b.num_rows for b in source.batches()] == [4000, 4000, 2000]


def test_dataframe_and_arrow_in_memory() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert read_all(open_source(frame)).to_pydict() == {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    table = pa.table({"a": [1.5, 2.5]})
    assert read_all(open_source(table)).equals(table)
    batch = table.to_batches()[0]
    assert read_all(open_source(batch, batch_rows=1)).equals(table)


def test_dataframe_with_mixed_values_quarantines_the_odd_ones(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": pd.Series([1, "two", 3], dtype=object)})
    source = open_source(frame, errors_path=tmp_path)
    assert read_all(source)["a"].to_pylist() == [1, 3]
    assert [e["line"] for e in errors_of(source)] == [2]
    assert source.quarantine.path == tmp_path / "dataframe.errors.jsonl"


def test_duckdb_query_over_parquet_files(tmp_path: Path) -> None:
    for i in range(2):
        pq.write_table(pa.table({"k": ["a", "b"], "v": [i, 10 * i]}), tmp_path / f"p{i}.parquet")
    query = f"SELECT k, sum(v) AS total FROM '{tmp_path}/*.parquet' GROUP BY k ORDER BY k"
    assert read_all(open_source("duckdb:", query=query)).to_pydict() == {
        "k": ["a", "b"],
        "total": [1, 10],
    }
    via_view = open_source(tmp_path, query="SELECT count(*) AS n FROM source")
    assert read_all(via_view).to_pydict() == {"n": [4]}


def test_duckdb_query_over_a_dataframe() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    source = open_source(frame, query="SELECT a * 2 AS b FROM source WHERE a > 1")
    assert read_all(source).to_pydict() == {"b": [4, 6]}


def test_duckdb_streams_in_batches(tmp_path: Path) -> None:
    source = open_source("duckdb:", query="SELECT range AS i FROM range(10000)", batch_rows=3000)
    assert [b.num_rows for b in source.batches()] == [3000, 3000, 3000, 1000]


def test_bad_duckdb_query(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="query failed") as info:
        open_source("duckdb:", query="SELEC nonsense")
    assert "\n" not in str(info.value)


def fill_table(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER, name VARCHAR(10), score REAL)")
        conn.execute(
            sa.text("INSERT INTO t VALUES (:id, :name, :score)"),
            [{"id": i, "name": f"n{i}", "score": i / 2} for i in range(rows)],
        )
    engine.dispose()


def test_sqlalchemy_url_over_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    fill_table(url, 250)
    source = open_source(url, query="SELECT id, name, score FROM t ORDER BY id", batch_rows=100)
    batches = list(source.batches())
    assert [b.num_rows for b in batches] == [100, 100, 50]
    table = pa.Table.from_batches(batches)
    assert table["id"].to_pylist() == list(range(250))
    assert table.schema.field("name").type == pa.string()


@pytest.mark.postgres
def test_sqlalchemy_url_over_postgresql(pg_url: str) -> None:
    fill_table(pg_url, 1200)
    source = open_source(pg_url, query="SELECT id, name FROM t ORDER BY id", batch_rows=500)
    assert [b.num_rows for b in source.batches()] == [500, 500, 200]
    assert source.rows_read == 1200
    assert source.schema == pa.schema([("id", pa.int64()), ("name", pa.string())])


def test_bad_sql_query_and_missing_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    fill_table(url, 1)
    with pytest.raises(InvalidArgument, match="no such table: nope") as info:
        open_source(url, query="SELECT * FROM nope")
    assert "\n" not in str(info.value)
    with pytest.raises(NotFound, match="does not exist"):
        open_source(f"sqlite:///{tmp_path / 'missing.db'}", query="SELECT 1")
    with pytest.raises(InvalidArgument, match="needs query="):
        open_source(url)


def test_missing_file_and_empty_glob(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        open_source(tmp_path / "nope.csv")
    with pytest.raises(NotFound, match="no files match"):
        open_source(str(tmp_path / "*.parquet"))
    with pytest.raises(NotFound, match="holds no CSV or Parquet"):
        open_source(tmp_path)


def test_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="has a header but no rows"):
        open_source(write_csv(tmp_path / "h.csv", "a,b\n"))
    with pytest.raises(InvalidArgument, match="has no rows"):
        open_source(write_csv(tmp_path / "z.csv", ""))
    with pytest.raises(InvalidArgument, match="has no rows"):
        open_source(pd.DataFrame({"a": []}))
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    with pytest.raises(InvalidArgument, match="has no rows"):
        open_source(tmp_path / "e.parquet")


def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(InvalidArgument, match="not a supported file type"):
        open_source(tmp_path / "x.xlsx")


def test_all_rows_bad_raises_after_quarantine(tmp_path: Path) -> None:
    source = open_source(write_csv(tmp_path / "a.csv", "x,y\n1\n2\n"), errors_path=tmp_path)
    with pytest.raises(InvalidArgument, match="no valid rows"):
        read_all(source)
    assert source.quarantine.count == 2


def test_iterating_again_reads_again(tmp_path: Path) -> None:
    source = open_source(write_csv(tmp_path / "a.csv", "x\n1\n2\n"))
    assert read_all(source).equals(read_all(source))
    assert source.rows_read == 2


MEMORY_SCRIPT = """
import sys, tracemalloc
import pyarrow as pa
from ratchet.data.io import open_source
tracemalloc.start()
rows = 0
for batch in open_source(sys.argv[1]).batches():
    rows += batch.num_rows
print(rows, tracemalloc.get_traced_memory()[1], pa.default_memory_pool().max_memory())
"""


def test_large_csv_reads_in_bounded_memory(tmp_path: Path) -> None:
    n = 1_900_000
    path = tmp_path / "big.csv"
    table = pa.table(
        {
            "i": pa.array(range(n)),
            "f": pa.array([i * 0.37 for i in range(n)]),
            "s": pa.array([f"name{i % 1000}" for i in range(n)]),
        }
    )
    pacsv.write_csv(table, path)
    del table
    size = path.stat().st_size
    assert size > 45_000_000
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path)], capture_output=True, text=True, check=True
    )
    rows, python_peak, arrow_peak = map(int, done.stdout.split())
    assert rows == n
    assert python_peak < size / 10
    assert arrow_peak < size / 3


def test_empty_csv_cells_are_missing_in_text_columns_too(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("name,city\nann,oslo\nbob,\ncid,NA\n")
    table = pa.Table.from_batches(list(open_source(path).batches()))
    assert table.column("city").to_pylist() == ["oslo", None, None]
    assert table.column("city").null_count == 2
