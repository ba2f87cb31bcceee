"""`ratchet predict` and `ratchet serve` end to end: output, one-line errors, a real server."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from cli_helpers import assert_one_line_error, run_cli
from training_data import prepared

from ratchet.artifacts import ArtifactStore
from ratchet.config import load_config
from ratchet.metadata import MetadataStore
from ratchet.registry import CHAMPION, Registry
from ratchet.training.classic import train_classic

Capsys = pytest.CaptureFixture[str]
ROWS = ["a,b,color,city", "0.5,-1,red,7", "0.1,abc,blue,8", "1,2", "0.3,0.2,never-seen,9"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("serve-cli")
    dataset = prepared(root / "data", rows=1000).folder
    for name, trees in (("small", 5), ("large", 15)):
        train_classic(
            "lightgbm", {"n_estimators": trees}, dataset=dataset, model_dir=root / name, threads=1
        )
    return root / "small", root / "large"


@pytest.fixture
def registered(home: Path, bundles: tuple[Path, Path]) -> None:
    """churn@1 (champion) and churn@2 in the home's registry."""
    config = load_config()
    with MetadataStore.from_config(config) as store:
        registry = Registry(store, ArtifactStore.from_config(config))
        registry.register("churn", bundles[0], aliases=(CHAMPION,))
        registry.register("churn", bundles[1])


@pytest.fixture
def csv_input(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("\n".join(ROWS) + "\n")
    return path


def test_predict_a_registered_model(
    registered: None, csv_input: Path, tmp_path: Path, capsys: Capsys
) -> None:
    out = tmp_path / "scores.parquet"
    code, stdout, stderr = run_cli(
        capsys, "predict", "churn:champion", str(csv_input), "-o", str(out)
    )
    assert code == 0, stderr
    assert stdout.startswith("predicted 2 of 4 rows with churn@1 in ")
    assert stderr.strip().splitlines() == [
        f"warning: 2 malformed rows, with their line numbers and reasons, are in "
        f"{tmp_path / 'scores.errors.jsonl'}"
    ]
    assert pq.read_table(out)["line"].to_pylist() == [2, 5]
    errors = [json.loads(x) for x in (tmp_path / "scores.errors.jsonl").read_text().splitlines()]
    assert [e["line"] for e in errors] == [3, 4]


def test_predict_a_bundle_folder_as_json(
    home: Path, bundles: tuple[Path, Path], csv_input: Path, tmp_path: Path, capsys: Capsys
) -> None:
    errors = tmp_path / "bad" / "rows.jsonl"
    code, stdout, _ = run_cli(
        capsys,
        "predict",
        str(bundles[1]),
        str(csv_input),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--errors",
        str(errors),
        "--json",
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["model"] == "large" and summary["errors"] == str(errors)
    assert (summary["rows"], summary["predicted"], summary["malformed"]) == (4, 2, 2)
    assert not home.exists()  # a folder needs no store


def test_predict_mistakes_are_one_line(
    registered: None, csv_input: Path, tmp_path: Path, capsys: Capsys
) -> None:
    out = str(tmp_path / "out.parquet")
    cases = [
        (("churn@9", str(csv_input)), 3, "model 'churn' has no version 9"),
        (("./nowhere", str(csv_input)), 3, "./nowhere is not a model bundle folder"),
        (("churn", str(tmp_path / "none.csv")), 3, "none.csv does not exist"),
        (("churn", str(tmp_path)), 2, "unsupported file type"),
    ]
    for args, exit_code, fragment in cases:
        code, _, stderr = run_cli(capsys, "predict", *args, "-o", out)
        assert_one_line_error(code, stderr, exit_code, fragment)
    (tmp_path / "narrow.csv").write_text("a,b\n1,2\n")
    code, _, stderr = run_cli(capsys, "predict", "churn", str(tmp_path / "narrow.csv"), "-o", out)
    assert_one_line_error(code, stderr, 2, "has no column 'color'")
    assert not Path(out).exists()


def test_predict_without_a_store_says_so(home: Path, csv_input: Path, capsys: Capsys) -> None:
    code, _, stderr = run_cli(capsys, "predict", "churn", str(csv_input), "-o", "out.csv")
    assert_one_line_error(code, stderr, 3, "no ratchet store")


def test_serve_mistakes_are_one_line(
    registered: None, bundles: tuple[Path, Path], capsys: Capsys
) -> None:
    cases = [
        (("churn", "--split", "churn@2"), 2, "--split 'churn@2' is malformed"),
        (("churn", "--split", "churn@2=1.5"), 2, "use MODEL=SHARE with 0 < SHARE < 1"),
        (("churn", "--split", "churn@1=0.6", "--split", "churn@2=0.4"), 2, "add up to 1"),
        (("churn:champion", "--split", "churn@1=0.1"), 2, "churn@1 appears twice"),
        (("churn:nope",), 3, "has no alias 'nope'"),
        (("churn", "--port", "70000"), 2, "--port must be between 0 and 65535"),
        (("churn", "--threads", "0"), 2, "--threads must be at least 1"),
    ]
    for args, exit_code, fragment in cases:
        code, _, stderr = run_cli(capsys, "serve", *args)
        assert_one_line_error(code, stderr, exit_code, fragment)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, stderr = run_cli(capsys, "serve", str(bundles[0]), "--port", port)
    assert_one_line_error(code, stderr, 5, f"cannot listen on 127.0.0.1:{port}")


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            pytest.fail(f"ratchet serve printed nothing in {timeout} s")
    return proc.stdout.readline()


def test_ratchet_serve_answers_over_http(registered: None) -> None:
    proc = subprocess.Popen(
        ["ratchet", "serve", "churn:champion", "--split", "churn@2=0.3", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _first_line(proc, timeout=60)
        found = re.search(r"serving churn@1 70%, churn@2 30% on (http://127\.0\.0\.1:\d+)", line)
        assert found, line
        with httpx.Client(base_url=found.group(1), timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert http.get("/health").json()["models"] == ["churn@1", "churn@2"]
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server never answered"
                    time.sleep(0.05)
            record = {"a": 0.5, "b": -1.0, "color": "red", "city": "7"}
            answers = [http.post("/predict", json=record) for _ in range(300)]
            assert {a.status_code for a in answers} == {200}
            versions = Counter(a.json()["model"] for a in answers)
            assert 0.2 < versions["churn@2"] / 300 < 0.4, versions
            bad = http.post("/predict", json={**record, "a": "x"})
            assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "a"
            aliases = [r["aliases"] for r in http.get("/model").json()["routes"]]
            assert aliases == [["champion"], []]
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
