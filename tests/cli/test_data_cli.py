"""`ratchet data stats|schema|validate|drift` end to end: output, records and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from cli_helpers import assert_one_line_error, run_cli

from ratchet import datasets
from ratchet.config import load_config
from ratchet.metadata import EventType, MetadataStore

Capsys = pytest.CaptureFixture[str]


def _table(shift: float = 0.0, rows: int = 200) -> pa.Table:
    return pa.table(
        {
            "age": [float(i % 50) + shift for i in range(rows)],
            "city": ["paris" if i % 3 else "lyon" for i in range(rows)],
            "label": [i % 2 for i in range(rows)],
        }
    )


@pytest.fixture
def train_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    pacsv.write_csv(_table(), path)
    return path


@pytest.fixture
def shifted_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "shifted.parquet"
    pq.write_table(_table(shift=100.0), path)
    return path


def _drift_json(capsys: Capsys, *args: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, "data", "drift", *args, "--json")
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def test_stats_table_json_and_recording(home: Path, train_csv: Path, capsys: Capsys) -> None:
    code, out, err = run_cli(capsys, "data", "stats", str(train_csv), "--label", "label")
    assert code == 0, err
    assert "200 rows" in out and "city" in out and "paris (133)" in out

    code, out, err = run_cli(capsys, "data", "stats", str(train_csv), "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["rows"] == 200
    age = next(f for f in stats["features"] if f["name"] == "age")
    assert age["numeric"]["mean"] == pytest.approx(24.5)
    artifact_id = stats["artifact_id"]

    with MetadataStore.from_config(load_config(), create=False) as store:
        artifact = store.get_artifact(artifact_id)
        assert artifact.type == datasets.STATISTICS
        assert artifact.properties["rows"] == 200 and artifact.properties["features"] == 3
        assert artifact.properties["source"] == str(train_csv)
        [event] = store.find_events(artifact_ids=[artifact_id])
        assert event.type == EventType.OUTPUT
        execution = store.get_execution(event.execution_id)
        assert execution.type == datasets.COMPUTE_STATISTICS


def test_stats_reports_quarantined_rows(home: Path, tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,x\n2,y\n3,z,extra\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "data", "stats", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["rows"] == 2
    [line] = err.strip().splitlines()
    assert "1 malformed rows" in line and "bad.errors.jsonl" in line
    assert Path(line.rsplit(" ", 1)[-1]).is_file()


def test_schema_round_trip_and_validate(
    home: Path, train_csv: Path, tmp_path: Path, capsys: Capsys
) -> None:
    schema = tmp_path / "schema.yaml"
    code, out, err = run_cli(
        capsys, "data", "schema", str(train_csv), "-o", str(schema), "--label", "label"
    )
    assert code == 0, err
    assert "version" in out and schema.is_file()
    assert "city:" in schema.read_text(encoding="utf-8")

    code, out, err = run_cli(capsys, "data", "validate", str(train_csv), "--schema", str(schema))
    assert code == 0, err
    assert "conforms" in out

    bad = tmp_path / "bad.csv"
    table = _table(shift=100.0).set_column(1, "city", pa.array(["rome"] * 200))
    pacsv.write_csv(table, bad)
    code, out, err = run_cli(
        capsys, "data", "validate", str(bad), "--schema", str(schema), "--json"
    )
    assert code == 1
    result = json.loads(out)
    assert result["valid"] is False
    assert {(a["feature"], a["kind"]) for a in result["anomalies"]} == {
        ("age", "out_of_range"),
        ("city", "unseen_values"),
    }
    assert len(err.strip().splitlines()) == 1 and "2 anomalies" in err

    code, out, err = run_cli(capsys, "data", "validate", str(bad), "--schema", str(schema))
    assert code == 1 and "out_of_range" in out


def _assert_report_shape(report: dict[str, Any]) -> None:
    assert set(report) == {"drifted", "features"}
    features = report["features"]
    assert isinstance(features, list) and features
    for feature in features:
        assert {"name", "metric", "distance", "threshold", "drifted"} <= set(feature)


def test_drift_json_not_drifted_and_drifted(
    home: Path, train_csv: Path, shifted_parquet: Path, capsys: Capsys
) -> None:
    same = _drift_json(capsys, str(train_csv), str(train_csv))
    _assert_report_shape(same)
    assert same["drifted"] is False

    moved = _drift_json(capsys, str(train_csv), str(shifted_parquet))
    _assert_report_shape(moved)
    assert moved["drifted"] is True
    by_name = {f["name"]: f for f in moved["features"]}
    assert by_name["age"]["drifted"] is True and by_name["age"]["metric"] == "jensen_shannon"
    assert by_name["city"]["drifted"] is False and by_name["city"]["metric"] == "l_infinity"

    lenient = _drift_json(
        capsys,
        str(train_csv),
        str(shifted_parquet),
        "--threshold",
        "age=1",
        "--threshold",
        "l_infinity=0.5",
    )
    assert lenient["drifted"] is False
    thresholds = {f["name"]: f["threshold"] for f in lenient["features"]}
    assert thresholds == {"age": 1.0, "city": 0.5, "label": 0.1}

    code, out, _ = run_cli(capsys, "data", "drift", str(train_csv), str(shifted_parquet))
    assert code == 0 and "DRIFTED" in out and "DriftReport artifact" in out


def test_drift_by_artifact_ids_records_lineage(
    home: Path, train_csv: Path, shifted_parquet: Path, capsys: Capsys
) -> None:
    ids = []
    for path in (train_csv, shifted_parquet):
        code, out, err = run_cli(capsys, "data", "stats", str(path), "--json")
        assert code == 0, err
        ids.append(json.loads(out)["artifact_id"])
    report = _drift_json(capsys, str(ids[0]), str(ids[1]))
    assert report["drifted"] is True

    with MetadataStore.from_config(load_config(), create=False) as store:
        [drift] = store.find_artifacts(type=datasets.DRIFT_REPORT)
        assert drift.properties["drifted"] is True
        assert drift.id is not None
        [output] = store.find_events(artifact_ids=[drift.id])
        execution = store.get_execution(output.execution_id)
        assert execution.type == datasets.DETECT_DRIFT
        events = store.find_events(execution_ids=[output.execution_id])
        inputs = {e.path: e.artifact_id for e in events if e.type == EventType.INPUT}
        assert inputs == {"baseline": ids[0], "current": ids[1]}
        # No new statistics were computed for ids.
        assert len(store.find_artifacts(type=datasets.STATISTICS)) == 2


def test_bad_inputs_are_one_line_errors(
    home: Path, train_csv: Path, tmp_path: Path, capsys: Capsys
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n", encoding="utf-8")
    all_null = tmp_path / "null.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": pa.array([None, None], pa.float64())}), all_null)
    null_typed = tmp_path / "null_typed.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": pa.nulls(2)}), null_typed)
    schema = tmp_path / "s.yaml"
    train = str(train_csv)

    cases = [
        (["data", "stats", str(tmp_path / "missing.csv")], 3, "does not exist"),
        (["data", "stats", str(empty)], 2, "empty"),
        (["data", "stats", str(header_only)], 2, "no rows"),
        (["data", "stats", train, "--label", "nope"], 3, "label column 'nope'"),
        (["data", "schema", train, "-o", str(schema), "--label", "nope"], 3, "'nope'"),
        (["data", "schema", str(all_null), "-o", str(schema)], 2, "'b' has no values"),
        (["data", "schema", str(null_typed), "-o", str(schema)], 2, "'b' has no values"),
        (["data", "validate", train, "--schema", str(tmp_path / "no.yaml")], 3, "no schema"),
        (["data", "drift", train, str(tmp_path / "gone.csv")], 3, "does not exist"),
        (["data", "drift", train, "999"], 3, "999"),
        (["data", "drift", train, train, "--threshold", "age"], 2, "malformed"),
        (["data", "drift", train, train, "--threshold", "age=high"], 2, "malformed"),
        (["data", "drift", train, train, "--threshold", "age=-1"], 2, "malformed"),
        (["data", "drift", train, train, "--threshold", "agee=0.2"], 2, "'agee'"),
    ]
    for args, expected, fragment in cases:
        code, _, err = run_cli(capsys, *args)
        assert_one_line_error(code, err, expected, fragment)
    assert not schema.exists()


def test_drift_rejects_an_artifact_of_another_type(
    home: Path, train_csv: Path, shifted_parquet: Path, capsys: Capsys
) -> None:
    _drift_json(capsys, str(train_csv), str(shifted_parquet))
    with MetadataStore.from_config(load_config(), create=False) as store:
        [drift] = store.find_artifacts(type=datasets.DRIFT_REPORT)
    code, _, err = run_cli(capsys, "data", "drift", str(drift.id), str(train_csv))
    assert_one_line_error(code, err, 2, "not DatasetStatistics")


def test_prepare_registers_versions_by_content(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    source = home.parent / "customers.parquet"
    pq.write_table(
        pa.table(
            {
                "id": np.arange(600),
                "age": rng.integers(18, 80, 600),
                "plan": pa.array(rng.choice(["free", "pro"], 600)),
                "churned": rng.integers(0, 2, 600),
            }
        ),
        source,
    )
    code, out, err = run_cli(
        capsys, "data", "prepare", str(source), "--label", "churned", "--key", "id"
    )
    assert code == 0, err
    assert "registered customers@" in out
    code, out, err = run_cli(
        capsys, "data", "prepare", str(source), "--label", "churned", "--key", "id"
    )
    assert code == 0 and "already registered" in out
    code, out, _ = run_cli(capsys, "data", "versions", "customers", "--json")
    [version] = json.loads(out)
    assert version["rows"] == 600 and version["dataset"] == "customers"
    folder = Path(version["folder"])
    assert {p.name for p in folder.iterdir()} >= {
        "train",
        "validation",
        "test",
        "raw_test",
        "schema.yaml",
        "transform.json",
    }
    code, out, _ = run_cli(capsys, "lineage", str(version["id"]), "--json")
    graph = json.loads(out)
    assert {a["type"] for a in graph["artifacts"]} >= {"Dataset", "DataSource"}
    code, _, err = run_cli(capsys, "data", "prepare", str(source), "--label", "nope")
    assert_one_line_error(code, err, 3, "label column 'nope'")


def test_prepare_on_the_beam_engine_gives_the_same_splits(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(4)
    source = home.parent / "orders.parquet"
    table = pa.table(
        {"id": np.arange(500), "amount": rng.normal(size=500), "late": rng.integers(0, 2, 500)}
    )
    pq.write_table(table, source)
    args = ["data", "prepare", str(source), "--label", "late", "--key", "id"]
    code, _, err = run_cli(capsys, *args, "--name", "local")
    assert code == 0, err
    beam_args = ["--engine", "beam", "--runner", "DirectRunner"]
    beam_args += ["--pipeline-option=--direct_num_workers=1"]
    code, _, err = run_cli(capsys, *args, "--name", "beam", *beam_args)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "data", "versions", "--json")
    splits = {
        v["dataset"]: json.loads((Path(v["folder"]) / "splits.json").read_text())
        for v in json.loads(out)
    }
    assert splits["beam"] == splits["local"]
    assert sum(splits["beam"].values()) == 500
    code, _, err = run_cli(capsys, *args, "--engine", "spark")
    assert_one_line_error(code, err, 2, "--engine must be local or beam")
