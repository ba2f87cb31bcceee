"""`ratchet baseline`: end to end on a registered dataset, and its one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from training_data import frame

from ratchet.artifacts import ArtifactStore
from ratchet.cli.baseline import _resolve
from ratchet.config import load_config
from ratchet.metadata import MetadataStore
from ratchet.registry import Registry


@pytest.fixture
def churn(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A registered dataset `churn`; returns its folder."""
    source = tmp_path / "churn.csv"
    frame(1500).to_csv(source, index=False)
    code, _, err = run_cli(capsys, "data", "prepare", str(source), "--label", "churned")
    assert code == 0, err
    [folder] = (home / "datasets" / "churn").iterdir()
    return folder


def test_baseline_registers_the_automl_model_and_its_floor(
    churn: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = ("--budget", "1.5", "--n-jobs", "1", "--estimator", "lgbm")
    code, out, err = run_cli(capsys, "baseline", "churn", *fast, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["dataset"], report["task"], report["metric"]) == ("churn", "binary", "log_loss")
    assert report["validation_rows"] > 0 and report["trials"] >= 1
    kinds = [(m["kind"], m["version"], m["aliases"]) for m in report["models"]]
    assert kinds == [
        ("automl", 3, ["baseline"]),
        ("floor-majority", 1, []),
        ("floor-linear", 2, []),
    ]
    automl, majority, _ = report["models"]
    assert automl["metrics"]["validation_log_loss"] < majority["metrics"]["validation_log_loss"]

    # Given as a folder, the dataset is still found, so lineage is recorded again.
    code, out, err = run_cli(capsys, "baseline", str(churn), *fast, "--metric", "accuracy")
    assert code == 0, err
    assert "warning" not in err
    for text in ("churn-baseline@6", "floor-majority", "validation accuracy", "test accuracy"):
        assert text in out
    assert "churn-baseline@6 is churn-baseline:baseline" in out

    with MetadataStore.from_config(load_config()) as store:
        registry = Registry(store, ArtifactStore.from_config(load_config()))
        assert registry.aliases("churn-baseline") == {"baseline": 6}
        version = registry.get("churn-baseline:baseline")
        assert version.labels["metric"] == "accuracy"
        graph = store.lineage(artifact_id=version.artifact_id, direction="upstream", depth=2)
        assert "Dataset" in {a.type for a in graph.artifacts}


def test_baseline_errors_are_one_line(churn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "baseline", "nope", "--budget", "1")
    assert_one_line_error(code, err, 3, "no dataset folder or registered dataset 'nope'")
    code, _, err = run_cli(capsys, "baseline", "churn", "--budget", "0")
    assert_one_line_error(code, err, 2, "budget must be more than 0 seconds")
    code, _, err = run_cli(capsys, "baseline", "churn", "--budget", "-5")
    assert_one_line_error(code, err, 2, "budget must be more than 0 seconds")
    code, _, err = run_cli(capsys, "baseline", "churn", "--metric", "bogus")
    assert_one_line_error(code, err, 2, "unknown metric 'bogus'")
    code, _, err = run_cli(capsys, "baseline", "churn", "--metric", "r2")
    assert_one_line_error(code, err, 2, "unknown metric 'r2' for binary")
    code, _, err = run_cli(capsys, "baseline", "churn", "--estimator", "catboost")
    assert_one_line_error(code, err, 2, "unknown estimator 'catboost'")


def test_an_unregistered_folder_has_no_dataset_to_link(churn: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(churn, copy)
    with MetadataStore.from_config(load_config()) as store:
        assert _resolve(store, str(copy)) == (copy, None, "copy")
        folder, recorded, name = _resolve(store, "churn")
    assert (folder, name) == (churn, "churn")
    assert recorded is not None and recorded.type == "Dataset"
