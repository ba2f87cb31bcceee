"""Batch prediction: every row predicted or listed with its line and reason, in each format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ratchet.errors import InvalidArgument, NotFound
from ratchet.prediction import predict_file
from ratchet.training.bundle import Bundle

GOOD = {"a": 0.5, "b": -1.0, "color": "red", "city": "7"}


def _errors(path: Path) -> dict[int, str]:
    return {e["line"]: e["error"] for e in map(json.loads, path.read_text().splitlines())}


def _probabilities(table: pa.Table) -> np.ndarray[Any, Any]:
    return np.column_stack([table["probability_0"], table["probability_1"]])


def test_jsonl_rows_are_predicted_or_listed_with_line_and_reason(
    tmp_path: Path, lightgbm: Bundle
) -> None:
    lines = {
        1: json.dumps(GOOD),
        2: json.dumps({**GOOD, "b": "1.5"}),
        3: json.dumps({**GOOD, "city": 7}),
        4: '{"a": NaN, "b": 1, "color": "red", "city": "7"}',
        5: '{"a": 1, "b": Infinity, "color": "red", "city": "7"}',
        6: json.dumps({k: v for k, v in GOOD.items() if k != "color"}),
        7: json.dumps({**GOOD, "a": None, "city": None}),  # missing values: imputed
        8: "",  # blank: no row
        9: "not json",
        10: "[1, 2]",
        11: json.dumps({**GOOD, "color": "never-seen", "id": 42}),  # OOV, extra field ignored
        12: json.dumps({**GOOD, "a": True}),
    }
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines.values()) + "\n")
    summary = predict_file(lightgbm, source, tmp_path / "out.parquet")
    assert (summary.rows, summary.predicted, summary.malformed) == (11, 3, 8)
    assert summary.errors == tmp_path / "out.errors.jsonl"
    out = pq.read_table(summary.output)
    assert out["line"].to_pylist() == [1, 7, 11]
    good = [json.loads(lines[n]) for n in (1, 7, 11)]
    np.testing.assert_allclose(_probabilities(out), lightgbm.predict_records(good))
    assert out["prediction"].to_pylist() == [
        str(int(p[1] > 0.5)) for p in lightgbm.predict_records(good)
    ]
    assert _errors(summary.errors) == {
        2: "field 'b' must be a number, got a string",
        3: "field 'city' must be a string, got a number",
        4: "field 'a' is NaN",
        5: "field 'b' is infinite",
        6: "field 'color' is missing",
        9: "not valid JSON: Expecting value: line 1 column 1 (char 0)",
        10: "expected a JSON object, got an array",
        12: "field 'a' must be a number, got a boolean",
    }


def test_jsonl_batches_parsed_whole_or_line_by_line_agree(tmp_path: Path, lightgbm: Bundle) -> None:
    rows = [{**GOOD, "a": i / 10, "color": ["red", "blue", "green"][i % 3]} for i in range(40)]
    text = [json.dumps(r) for r in rows]
    text[17] = json.dumps({**rows[17], "b": "x"})  # one batch falls back to line by line
    text[30] = json.dumps({k: v for k, v in rows[30].items() if k != "b"})  # read whole
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(text))  # no newline at the end
    summary = predict_file(lightgbm, source, tmp_path / "out.jsonl", batch_rows=7)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    kept = [i for i in range(40) if i not in (17, 30)]
    assert [r["line"] for r in out] == [i + 1 for i in kept]
    expected = lightgbm.predict_records([rows[i] for i in kept])
    np.testing.assert_allclose([[r["probability_0"], r["probability_1"]] for r in out], expected)
    assert summary.errors is not None and sorted(_errors(summary.errors)) == [18, 31]


def test_csv_line_numbers_count_the_header_blank_lines_and_bad_rows(
    tmp_path: Path, lightgbm: Bundle
) -> None:
    text = [
        "id,a,b,color,city",  # line 1; an extra column is ignored
        "1,0.5,-1,red,7",
        "2,0.5,abc,red,7",
        "3,1,2",
        "",
        "5,,,blue,",  # missing values: imputed
        "6,0.1,0.2,blue,8,extra",
        "7,NA,inf,red,7",
        "8,0.3,0.4,never-seen,7",
        "9,,,,",
    ]
    source = tmp_path / "in.csv"
    source.write_text("\n".join(text) + "\n")
    summary = predict_file(
        lightgbm, source, tmp_path / "out.csv", errors_path=tmp_path / "bad.jsonl"
    )
    out = pacsv.read_csv(tmp_path / "out.csv")
    assert out["line"].to_pylist() == [2, 6, 9]
    good = [
        GOOD,
        {"a": None, "b": None, "color": "blue", "city": None},
        {"a": 0.3, "b": 0.4, "color": "never-seen", "city": "7"},
    ]
    np.testing.assert_allclose(_probabilities(out), lightgbm.predict_records(good))
    errors = _errors(tmp_path / "bad.jsonl")
    assert sorted(errors) == [3, 4, 5, 7, 8, 10]
    assert "column 'b'" in errors[3] and "abc" in errors[3]
    assert errors[4] == "expected 5 fields, got 3"
    assert errors[5].startswith("no value for any of the model's fields")
    assert errors[7] == "expected 5 fields, got 6"
    assert errors[8] == "field 'b' is infinite"
    assert errors[10] == errors[5]
    assert (summary.rows, summary.malformed) == (9, 6)


def test_csv_numbering_holds_across_blocks(tmp_path: Path, lightgbm: Bundle) -> None:
    rows = 60_000  # > 1 MiB: several blocks of the CSV reader
    bad = {3: "1,2", 25_000: "x,1,red,7", 47_700: "1,2,3,4,5", 47_701: "", 59_999: "1,2"}
    lines = ["a,b,color,city"] + [f"{i % 7}.125,0.5,green,{i % 100}" for i in range(rows)]
    for line, row in bad.items():
        lines[line - 1] = row
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    assert source.stat().st_size > 1 << 20
    summary = predict_file(lightgbm, source, tmp_path / "out.parquet")
    numbers = pq.read_table(tmp_path / "out.parquet")["line"].to_numpy()
    expected = np.array([n for n in range(2, rows + 2) if n not in bad])
    np.testing.assert_array_equal(numbers, expected)
    assert summary.errors is not None and sorted(_errors(summary.errors)) == sorted(bad)


def test_parquet_rows_nan_infinite_and_uncastable(tmp_path: Path, lightgbm: Bundle) -> None:
    table = pa.table(
        {
            "a": [0.5, float("nan"), float("inf"), None, 0.5],
            "b": ["-1", "2", "3", "4", "abc"],  # text that holds numbers is cast
            "color": ["red"] * 5,
            "city": [7, 8, 9, 10, 11],  # ints for a category are cast to text
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    summary = predict_file(lightgbm, tmp_path / "in.parquet", tmp_path / "out.parquet")
    out = pq.read_table(tmp_path / "out.parquet")
    assert out["line"].to_pylist() == [1, 4]
    good = [GOOD, {"a": None, "b": 4.0, "color": "red", "city": "10"}]
    np.testing.assert_allclose(_probabilities(out), lightgbm.predict_records(good))
    assert summary.errors is not None
    errors = _errors(summary.errors)
    assert errors[2] == "field 'a' is NaN" and errors[3] == "field 'a' is infinite"
    assert "column 'b'" in errors[5]
    # the errors file is strict JSON even where the row held NaN
    assert '"a": "nan"' in summary.errors.read_text()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_every_output_format_holds_the_same_predictions(
    tmp_path: Path, mlp: Bundle, dataset_folder: Path, suffix: str
) -> None:
    raw = pq.read_table(dataset_folder / "raw_test").drop(["churned"])
    pq.write_table(raw, tmp_path / "in.parquet")
    summary = predict_file(mlp, tmp_path / "in.parquet", tmp_path / f"out{suffix}", batch_rows=50)
    assert (summary.predicted, summary.malformed, summary.errors) == (raw.num_rows, 0, None)
    if suffix == ".parquet":
        out = pq.read_table(summary.output)
    elif suffix == ".csv":
        out = pacsv.read_csv(summary.output)
    else:
        out = pa.Table.from_pylist([json.loads(x) for x in summary.output.read_text().splitlines()])
    assert out["line"].to_pylist() == list(range(1, raw.num_rows + 1))
    np.testing.assert_allclose(_probabilities(out), mlp.predict_table(raw), rtol=1e-6)


def test_regression_writes_the_value(tmp_path: Path, regression: Bundle) -> None:
    rows = [{"b": 0.1, "color": "red", "city": "3"}, {"b": -2.0, "color": "blue", "city": "9"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    predict_file(regression, tmp_path / "in.jsonl", tmp_path / "out.parquet")
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["line", "prediction"]
    np.testing.assert_allclose(out["prediction"].to_numpy(), regression.predict_records(rows))


def test_bad_files_fail_whole_and_leave_nothing(tmp_path: Path, lightgbm: Bundle) -> None:
    pq.write_table(pa.table({"a": [1.0], "b": [2.0], "color": ["red"]}), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidArgument, match="has no column 'city'; the model reads a, b"):
        predict_file(lightgbm, tmp_path / "in.parquet", out)
    assert list(tmp_path.iterdir()) == [tmp_path / "in.parquet"]
    with pytest.raises(InvalidArgument, match="unsupported file type"):
        predict_file(lightgbm, tmp_path / "in.parquet", tmp_path / "out.xlsx")
    with pytest.raises(NotFound, match="does not exist"):
        predict_file(lightgbm, tmp_path / "nope.csv", out)
    with pytest.raises(InvalidArgument, match="three different files"):
        predict_file(lightgbm, tmp_path / "in.parquet", tmp_path / "in.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InvalidArgument, match="no header"):
        predict_file(lightgbm, tmp_path / "empty.csv", out)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidArgument, match="cannot read"):
        predict_file(lightgbm, tmp_path / "broken.parquet", out)


def test_a_clean_run_removes_an_old_errors_file(tmp_path: Path, lightgbm: Bundle) -> None:
    (tmp_path / "in.jsonl").write_text(json.dumps(GOOD) + "\n")
    stale = tmp_path / "out.errors.jsonl"
    stale.write_text('{"line": 1}\n')
    summary = predict_file(lightgbm, tmp_path / "in.jsonl", tmp_path / "out.csv")
    assert summary.errors is None and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.csv"]
