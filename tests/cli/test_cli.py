"""The CLI end to end: demo, listings, JSON output, and one clear line for every mistake."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli


@pytest.fixture
def demo_home(home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, err = run_cli(capsys, "demo", "--tracking-only", "--epochs", "5")
    assert code == 0, err
    assert "best run:" in out
    return home


def test_demo_then_every_listing(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "experiments", "list", "--json")
    assert code == 0
    [experiment] = json.loads(out)
    assert experiment["experiment"] == "demo" and experiment["runs"] == 3

    code, out, _ = run_cli(capsys, "runs", "list", "demo", "--json")
    runs = json.loads(out)
    assert code == 0 and len(runs) == 3
    assert {r["state"] for r in runs} == {"COMPLETE"}
    assert all("param.learning_rate" in r and "metric.val_log_loss" in r for r in runs)
    names = [f"demo/{r['run_name']}" for r in runs]

    code, out, _ = run_cli(capsys, "runs", "show", names[0], "--json")
    shown = json.loads(out)
    assert code == 0 and shown["state"] == "COMPLETE"
    assert shown["time_series"]["val_log_loss"]["points"] == 5
    assert {a["type"] for a in shown["artifacts"]} >= {"Model", "TensorBoardLogs"}

    code, out, _ = run_cli(capsys, "runs", "compare", *names, "--json")
    compared = json.loads(out)
    lr_row = next(r for r in compared["rows"] if r["name"] == "param.learning_rate")
    assert code == 0 and lr_row["differs"] == "*"

    code, out, _ = run_cli(capsys, "runs", "show", names[1])
    assert code == 0 and "val_log_loss" in out

    model_id = next(a["id"] for a in shown["artifacts"] if a["type"] == "Model")
    code, out, _ = run_cli(capsys, "lineage", str(model_id), "--json")
    graph = json.loads(out)
    assert code == 0
    assert {a["type"] for a in graph["artifacts"]} >= {"Dataset", "Model"}
    assert {e["type"] for e in graph["executions"]} >= {"Trainer"}
    code, out, _ = run_cli(capsys, "lineage", str(model_id))
    assert code == 0 and "upstream" in out and "Trainer" in out

    code, out, _ = run_cli(capsys, "store", "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["revision"] == info["code_revision"]
    assert info["counts"]["contexts"] == 4

    code, out, _ = run_cli(capsys, "store", "migrate")
    assert code == 0 and "up to date" in out


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (("runs", "show", "demo/nope"), 3, "no run 'demo/nope'"),
        (("runs", "list", "nope"), 3, "no experiment 'nope'"),
        (("runs", "compare", "a"), 2, "at least two runs"),
        (("lineage", "99999"), 3, "no artifact with id 99999"),
        (("lineage", "1", "--direction", "sideways"), 2, "--direction"),
        (("demo", "--tracking-only", "--learning-rates", "fast"), 2, "--learning-rates"),
        (("demo", "--tracking-only", "--epochs", "many"), 2, "'--epochs'"),
        (("demo", "--max-trials", "0"), 2, "--max-trials must be >= 1"),
        (("lineage", "abc"), 2, "'artifact_id'"),
        (("runs", "show", "--bogus", "x"), 2, "No such option: --bogus"),
        (("nonsense",), 2, "No such command 'nonsense'"),
    ],
)
def test_mistakes_give_one_line(
    demo_home: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    exit_code: int,
    fragment: str,
) -> None:
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, exit_code, fragment)


def test_missing_home_is_an_error_and_creates_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "experiments", "list")
    assert_one_line_error(code, err, 3, "no ratchet store")
    assert not home.exists()


def test_home_under_a_file_is_an_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = home.parent / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(capsys, "--home", str(blocker / "home"), "demo", "--epochs", "1")
    assert_one_line_error(code, err, 6, "cannot create RATCHET_HOME")


def test_corrupted_database_is_an_error_not_a_traceback(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home.mkdir()
    (home / "metadata.db").write_bytes(b"this is not sqlite" * 100)
    code, _, err = run_cli(capsys, "store", "info")
    assert_one_line_error(code, err, 6, "not a readable metadata store")
    assert (home / "metadata.db").read_bytes() == b"this is not sqlite" * 100


def test_store_from_a_newer_ratchet_is_refused(
    demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(demo_home / "metadata.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    for args in (("store", "info"), ("demo",), ("store", "migrate")):
        code, _, err = run_cli(capsys, *args)
        assert_one_line_error(code, err, 5, "upgrade ratchet")
    with sqlite3.connect(demo_home / "metadata.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


def test_unwritable_home_is_reported(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere; the home-under-a-file test covers root")
    home.mkdir()
    home.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "demo", "--tracking-only", "--epochs", "1")
    finally:
        home.chmod(0o700)
    assert_one_line_error(code, err, 6, "not writable")


def test_console_script_is_installed(home: Path) -> None:
    done = subprocess.run(
        ["ratchet", "runs", "show", "x/y"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"error: no ratchet store at {home}; set RATCHET_HOME or record something first"
    ]
