"""`ratchet models list|show|promote|rollback|evaluate|compare` end to end on real bundles."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from cli_helpers import assert_one_line_error, run_cli
from training_data import prepared

from ratchet import datasets
from ratchet.artifacts import ArtifactStore, hash_path
from ratchet.config import load_config
from ratchet.data.engines.local import PreparedDataset
from ratchet.metadata import MetadataStore
from ratchet.registry import Registry
from ratchet.training.classic import train_classic

Capsys = pytest.CaptureFixture[str]
METRICS = ["log_loss", "roc_auc", "pr_auc", "accuracy", "f1", "ece"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[PreparedDataset, Path, Path]:
    root = tmp_path_factory.mktemp("models-cli")
    dataset = prepared(root / "data", rows=2000)
    logistic, lightgbm = root / "logistic", root / "lightgbm"
    train_classic("sklearn-logistic", {}, dataset=dataset.folder, model_dir=logistic, threads=1)
    train_classic(
        "lightgbm", {"n_estimators": 5}, dataset=dataset.folder, model_dir=lightgbm, threads=1
    )
    return dataset, logistic, lightgbm


@pytest.fixture
def folder(home: Path, trained: tuple[PreparedDataset, Path, Path]) -> Path:
    """A store with dataset `churn` and model `churn`: v1 (logistic, trained on the dataset,
    labelled) and v2 (LightGBM, no lineage). Returns the dataset folder."""
    dataset, logistic, lightgbm = trained
    config = load_config()
    with MetadataStore.from_config(config) as store:
        artifacts = ArtifactStore.from_config(config)
        recorded, _ = datasets.record_dataset(
            store,
            artifacts,
            dataset,
            name="churn",
            source="frame",
            version=hash_path(dataset.folder),
            started=time.time(),
        )
        registry = Registry(store, artifacts)
        registry.register("churn", logistic, labels={"team": "growth"}, inputs={"data": recorded})
        registry.register("churn", lightgbm)
    return dataset.folder


def _json(capsys: Capsys, *args: str) -> Any:
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_list_and_show(folder: Path, capsys: Capsys) -> None:
    code, out, err = run_cli(capsys, "models", "list")
    assert code == 0, err
    assert "churn" in out and "lightgbm" in out
    [row] = _json(capsys, "models", "list")
    assert (row["model"], row["versions"], row["latest"], row["aliases"]) == ("churn", 2, 2, {})

    code, out, err = run_cli(capsys, "models", "show", "churn")
    assert code == 0, err
    assert "team=growth" in out and "no aliases" in out
    model = _json(capsys, "models", "show", "churn")
    assert [v["version"] for v in model["versions"]] == [2, 1]

    version = _json(capsys, "models", "show", "churn@1")
    assert version["labels"] == {"team": "growth"} and version["framework"] == "sklearn"
    assert "Dataset" in {a["type"] for a in version["upstream"]}
    code, out, err = run_cli(capsys, "models", "show", "churn@1")
    assert code == 0, err
    assert "lineage (upstream)" in out and "churn@" in out


def test_promote_and_rollback(folder: Path, capsys: Capsys) -> None:
    code, out, err = run_cli(capsys, "models", "promote", "churn", "1")
    assert (code, out.strip()) == (0, "churn:champion -> version 1"), err
    code, out, err = run_cli(capsys, "models", "promote", "churn", "2", "--reason", "faster")
    assert (code, out.strip()) == (0, "churn:champion -> version 2 (was 1)"), err
    assert _json(capsys, "models", "show", "churn:champion")["version"] == 2
    moves = _json(capsys, "models", "show", "churn")["moves"]
    assert [(m["to"], m["reason"]) for m in moves] == [(1, "promoted by hand"), (2, "faster")]
    code, out, err = run_cli(capsys, "models", "rollback", "churn")
    assert (code, out.strip()) == (0, "churn:champion -> version 1 (rolled back)"), err
    assert _json(capsys, "models", "list")[0]["aliases"] == {"champion": 1}


def test_registry_errors_are_one_line(folder: Path, capsys: Capsys) -> None:
    cases = [
        (("show", "nope"), 3, "no registered model 'nope'"),
        (("show", "churn:champion"), 3, "has no alias 'champion'"),
        (("show", "churn@x"), 2, "must be a number"),
        (("promote", "churn", "9"), 3, "has no version 9"),
        (("promote", "nope", "1"), 3, "no registered model 'nope'"),
        (("rollback", "churn"), 5, "no earlier version"),
        (("compare", "churn@1", "nope:champion"), 3, "no registered model 'nope'"),
    ]
    for args, exit_code, fragment in cases:
        code, _, err = run_cli(capsys, "models", *args)
        assert_one_line_error(code, err, exit_code, fragment)


def test_compare_prints_a_table_per_slice_and_records_both(folder: Path, capsys: Capsys) -> None:
    args = ("models", "compare", "churn@1", "churn@2", "--data", str(folder))
    result = _json(capsys, *args, "--slice", "color", "--slice", "a:0")
    raw = pq.read_table(folder / "raw_test")
    slices = {s["slice"]: s for s in result["slices"]}
    assert result["slices"][0]["slice"] == "overall" and slices["overall"]["rows"] == raw.num_rows
    assert {"color=red", "color=green", "color=blue", "a<0", "a>=0"} < set(slices)
    assert slices["a<0"]["rows"] + slices["a>=0"]["rows"] == raw.num_rows
    assert [m["metric"] for m in slices["overall"]["metrics"]] == METRICS
    assert (result["a"], result["b"]) == ("churn@1", "churn@2")
    with MetadataStore.from_config(load_config(), create=False) as store:
        evaluations = [store.get_artifact(i) for i in result["evaluation_ids"]]
    assert [e.properties["version"] for e in evaluations] == [1, 2]
    assert {e.properties["fingerprint"] for e in evaluations} == {result["fingerprint"]}
    # The folder is the registered dataset: both evaluations name its version.
    assert evaluations[0].properties["dataset_version"] == hash_path(folder)

    code, out, err = run_cli(capsys, *args, "--slice", "color")
    assert code == 0, err
    assert f"overall ({raw.num_rows} rows)" in out and "color=red (" in out
    assert "churn@1" in out and "recorded as Evaluation artifacts" in out


def test_compare_finds_data_by_dataset_name_or_lineage(folder: Path, capsys: Capsys) -> None:
    by_folder = _json(capsys, "models", "compare", "churn@1", "churn@2", "--data", str(folder))
    by_name = _json(capsys, "models", "compare", "churn@1", "churn@2", "--data", "churn")
    version = hash_path(folder)[:8]
    by_prefix = _json(
        capsys, "models", "compare", "churn@1", "churn@2", "--data", f"churn@{version}"
    )
    by_lineage = _json(capsys, "models", "compare", "churn@1", "churn@2")  # v1's dataset
    assert by_folder["fingerprint"] == by_name["fingerprint"] == by_prefix["fingerprint"]
    assert by_lineage["fingerprint"] == by_folder["fingerprint"]
    code, _, err = run_cli(capsys, "models", "compare", "churn@2", "churn@1")
    assert_one_line_error(code, err, 2, "give --data: churn@2 has no dataset version")


def test_compare_bad_data_and_slices_are_one_line(
    folder: Path, tmp_path: Path, capsys: Capsys
) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    pacsv.write_csv(pq.read_table(folder / "raw_test").drop_columns(["churned"]), unlabelled)
    base = ("models", "compare", "churn@1", "churn@2", "--data")
    cases = [
        ((str(unlabelled),), 2, "no label column 'churned'"),
        (("nothing-here",), 3, "neither a file or folder nor a registered dataset"),
        ((str(folder), "--slice", "a:x,1"), 2, "bucket edges must be numbers"),
        ((str(folder), "--slice", "a:1,0"), 2, "must increase"),
        ((str(folder), "--slice", "nope"), 2, "slice column 'nope' is not in the data"),
    ]
    for args, exit_code, fragment in cases:
        code, _, err = run_cli(capsys, *base, *args)
        assert_one_line_error(code, err, exit_code, fragment)


def test_evaluate_records_an_evaluation_shown_with_the_version(
    folder: Path, capsys: Capsys
) -> None:
    run_cli(capsys, "models", "promote", "churn", "1")
    result = _json(capsys, "models", "evaluate", "churn:champion", "--slice", "color")
    assert result["model"] == "churn@1"
    assert result["overall"]["rows"] == pq.read_table(folder / "raw_test").num_rows
    [shown] = _json(capsys, "models", "show", "churn@1")["evaluations"]
    assert shown["id"] == result["evaluation_id"]
    assert shown["dataset"] == hash_path(folder)[:12]
    assert shown["metrics"]["log_loss"] == pytest.approx(result["overall"]["metrics"]["log_loss"])
    code, out, err = run_cli(capsys, "models", "evaluate", "churn@2", "--data", str(folder))
    assert code == 0, err
    assert "churn@2 on" in out and "log_loss" in out and "recorded as Evaluation" in out
