"""The classic trainers on small prepared datasets with a learnable signal, real libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.data.engines.local import prepare_dataset
from ratchet.errors import InvalidArgument, NotFound
from ratchet.training.bundle import load_bundle
from ratchet.training.classic import (
    SPECS,
    load_classic,
    main,
    run_classic,
    score,
    train_classic,
)
from ratchet.training.contract import STOPPED, TrainingContext, running
from ratchet.training.jobs import run_job

ROWS = 1500
#: Settings for 1,200 training rows; the libraries' defaults overfit data this small.
SMALL: dict[str, dict[str, Any]] = {
    "sklearn-logistic": {},
    "sklearn-linear": {},
    "sklearn-forest": {"n_estimators": 30, "min_samples_leaf": 5},
    "lightgbm": {"n_estimators": 40, "min_child_samples": 10},
    "xgboost": {"n_estimators": 40, "learning_rate": 0.1, "max_depth": 3},
}
BOOSTED = ("sklearn-forest", "lightgbm", "xgboost")  # trees, for any task


def features(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A numeric signal, a one-hot category with signal and an embedding-sized noise column."""
    x = rng.normal(size=ROWS)
    color = rng.choice(["red", "green", "blue"], size=ROWS)
    city = rng.choice([f"city{i}" for i in range(60)], size=ROWS)
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=ROWS), "color": color, "city": city})
    return frame, 2.0 * x + 1.5 * (color == "red")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("datasets")
    frame, signal = features(rng)
    binary = frame.assign(y=(rng.random(ROWS) < 1 / (1 + np.exp(1 - signal))).astype(int))
    frame, signal = features(rng)
    noisy = signal + rng.normal(scale=0.7, size=ROWS)
    kinds = np.digitize(noisy, np.quantile(noisy, [0.33, 0.66]))
    multiclass = frame.assign(y=np.array(["low", "mid", "high"])[kinds])
    frame, signal = features(rng)
    regression = frame.assign(y=3.0 * signal + rng.normal(size=ROWS) + 10)
    # Integer labels 0 and 2: the task has classes 0, 1, 2, and class 1 is never seen.
    frame, signal = features(rng)
    gap = frame.assign(y=np.where(signal + rng.normal(size=ROWS) > 0.75, 2, 0))
    tables = {"binary": binary, "multiclass": multiclass, "regression": regression, "gap": gap}
    for name, table in tables.items():
        prepare_dataset(table, root / name, label="y", threads=1)
    return {name: root / name for name in tables}


def split(folder: Path, name: str = "validation") -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted((folder / name).glob("*.parquet")))


def columns(table: pa.Table) -> dict[str, np.ndarray]:
    """What the feeder yields: one numpy array per column (the label included)."""
    return {name: table.column(name).to_numpy() for name in table.column_names}


def floor(folder: Path) -> float:
    """The trivial model's validation loss: the train prior's log-loss, or the std."""
    train, validation = split(folder, "train").column("y"), split(folder, "validation").column("y")
    if pa.types.is_floating(train.type):
        return float(np.std(validation.to_numpy()))
    names, counts = np.unique(train.to_numpy(zero_copy_only=False), return_counts=True)
    prior = dict(zip(names.tolist(), counts / counts.sum(), strict=True))
    return float(-np.mean([np.log(prior[v]) for v in validation.to_pylist()]))


def train(kind: str, folder: Path, model_dir: Path, **extra: Any) -> dict[str, float]:
    seed = extra.pop("seed", 0)
    return train_classic(
        kind, {**SMALL[kind], **extra}, dataset=folder, model_dir=model_dir, seed=seed, threads=1
    )


CASES = [
    ("binary", "sklearn-logistic"),
    ("multiclass", "sklearn-logistic"),
    ("regression", "sklearn-linear"),
    *((task, kind) for task in ("binary", "multiclass", "regression") for kind in BOOSTED),
]


@pytest.mark.parametrize(("task", "kind"), CASES)
def test_each_trainer_beats_the_trivial_model_and_reloads_to_the_same_predictions(
    datasets: dict[str, Path], tmp_path: Path, task: str, kind: str
) -> None:
    metrics = train(kind, datasets[task], tmp_path / "model")

    trivial = floor(datasets[task])
    if task == "regression":
        assert metrics["validation_rmse"] < 0.6 * trivial
        assert metrics["validation_loss"] == pytest.approx(metrics["validation_rmse"] ** 2)
    else:
        assert metrics["validation_loss"] < 0.9 * trivial
        assert metrics["validation_accuracy"] > 0.6
    model = load_classic(tmp_path / "model")
    # The saved model gives exactly the metrics computed from the fitted one.
    reloaded: dict[str, float] = {}
    for name in ("validation", "test"):
        rows = split(datasets[task], name)
        predictions = model.predict(columns(rows))
        shape = {"binary": (rows.num_rows, 2), "multiclass": (rows.num_rows, 3)}
        assert predictions.shape == shape.get(task, (rows.num_rows,))
        targets = model.task.encode(rows.column("y").to_numpy(zero_copy_only=False))
        reloaded |= {f"{name}_{k}": v for k, v in score(model.task, targets, predictions).items()}
    assert reloaded == metrics
    # The model folder is a serving bundle: raw rows in, the same predictions out.
    bundle = load_bundle(tmp_path / "model")
    assert bundle.framework == model.framework and bundle.manifest["kind"] == kind
    assert bundle.manifest["features"] == ["x", "noise", "color", "city"]
    assert bundle.manifest["metrics"] == metrics
    np.testing.assert_array_equal(
        bundle.predict_table(split(datasets[task], "raw_test")), predictions
    )


@pytest.mark.parametrize("kind", ["sklearn-forest", "lightgbm", "xgboost"])
def test_a_seed_fixes_the_model(datasets: dict[str, Path], tmp_path: Path, kind: str) -> None:
    randomized = {"sklearn-forest": {}, "lightgbm": {"subsample": 0.7, "colsample_bytree": 0.7}}
    extra = randomized.get(kind, {"subsample": 0.7, "colsample_bytree": 0.7})
    validation = columns(split(datasets["binary"]))
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train(kind, datasets["binary"], tmp_path / name, seed=seed, **extra)
        runs[name] = load_classic(tmp_path / name).predict(validation)
    np.testing.assert_array_equal(runs["a"], runs["b"])
    assert not np.array_equal(runs["a"], runs["c"])


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_boosters_report_every_round_then_the_final_metrics(
    datasets: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    reports: list[tuple[int, dict[str, float]]] = []
    with running(TrainingContext(model_dir=tmp_path), lambda s, m: reports.append((s, m))):
        metrics = train(kind, datasets["regression"], tmp_path / "model")

    rounds, final = reports[:-1], reports[-1]
    assert [step for step, _ in rounds] == list(range(1, SMALL[kind]["n_estimators"] + 1))
    assert all(list(m) == ["validation_loss"] for _, m in rounds)
    assert rounds[-1][1]["validation_loss"] == pytest.approx(metrics["validation_loss"], rel=1e-5)
    assert final == (SMALL[kind]["n_estimators"], metrics)


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_early_stopping_keeps_the_best_round(
    datasets: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    reports: list[tuple[int, dict[str, float]]] = []
    with running(TrainingContext(model_dir=tmp_path), lambda s, m: reports.append((s, m))):
        # A high learning rate on small data overfits within a few rounds.
        metrics = train(
            kind,
            datasets["binary"],
            tmp_path / "model",
            n_estimators=500,
            learning_rate=0.5,
            early_stopping_rounds=5,
        )

    losses = [m["validation_loss"] for _, m in reports[:-1]]
    assert 5 < len(losses) < 500
    assert metrics["validation_loss"] == pytest.approx(min(losses), rel=1e-5)
    assert reports[-1][0] == len(losses)  # the final report comes at the last round trained


def test_classes_missing_from_the_train_split_keep_their_column(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    validation = columns(split(datasets["gap"]))
    for kind in ("sklearn-logistic", "lightgbm", "xgboost"):
        train(kind, datasets["gap"], tmp_path / kind)
        model = load_classic(tmp_path / kind)
        assert model.task.classes == ("0", "1", "2")
        predictions = model.predict(validation)
        assert predictions.shape[1] == 3 and predictions[:, 1].max() < 0.05
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)


def test_a_job_stopped_by_its_launcher_saves_nothing(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    context = TrainingContext(model_dir=tmp_path / "model", dataset=str(datasets["binary"]))
    result = run_job(
        run_classic,
        {"kind": "lightgbm", "threads": 1},
        context=context,
        launcher="inprocess",
        on_report=lambda step, metrics: step >= 3,  # a pruner's verdict
    )

    assert result.state == STOPPED
    assert [item["step"] for item in result.reports] == [1, 2, 3]
    assert not (tmp_path / "model" / "model.json").exists()


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("lightgbm", {"num_leafs": 31}, "unknown hyperparameter 'num_leafs'"),
        ("lightgbm", {"learning_rate": 3.0}, "'learning_rate' must be in"),
        ("xgboost", {"max_depth": 2.5}, "'max_depth' must be a int"),
        ("sklearn-forest", {"max_features": "half"}, "'max_features' must be one of"),
        ("sklearn-logistic", {"C": 0}, "'C' must be in"),
        ("catboost", {}, "unknown classic trainer 'catboost'"),
    ],
)
def test_bad_hyperparameters_are_refused_before_any_data_is_read(
    tmp_path: Path, kind: str, values: dict[str, Any], message: str
) -> None:
    # The dataset does not exist: reaching it would raise NotFound instead.
    with pytest.raises(InvalidArgument, match=message):
        train_classic(kind, values, dataset=tmp_path / "nowhere", model_dir=tmp_path / "model")


def test_linear_floor_models_match_the_task(datasets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="use sklearn-linear"):
        train("sklearn-logistic", datasets["regression"], tmp_path)
    with pytest.raises(InvalidArgument, match="use sklearn-logistic"):
        train("sklearn-linear", datasets["binary"], tmp_path)
    with pytest.raises(NotFound, match="not a prepared dataset"):
        train("lightgbm", tmp_path, tmp_path / "model")


def test_loading_refuses_missing_and_foreign_folders(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="no model\\.json"):
        load_classic(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"framework": "torch", "kind": "mlp"}))
    with pytest.raises(InvalidArgument, match="does not describe a classic model"):
        load_classic(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="does not describe a classic model"):
        load_classic(tmp_path)
    train("sklearn-logistic", datasets["binary"], tmp_path / "model")
    (tmp_path / "model" / "model.joblib").unlink()
    with pytest.raises(NotFound, match=r"not its model file model\.joblib"):
        load_classic(tmp_path / "model")


def test_predict_wants_transformed_columns(datasets: dict[str, Path], tmp_path: Path) -> None:
    train("lightgbm", datasets["binary"], tmp_path, n_estimators=3)
    model = load_classic(tmp_path)
    good = columns(split(datasets["binary"]))
    with pytest.raises(InvalidArgument, match="'city' is missing"):
        model.predict({k: v for k, v in good.items() if k != "city"})
    raw = columns(split(datasets["binary"], "raw_test"))
    with pytest.raises(InvalidArgument, match="transformed, not raw"):
        model.predict(raw)
    with pytest.raises(InvalidArgument, match=r"'color' holds ids outside 0\.\.3"):
        model.predict({**good, "color": good["color"] + 10})
    assert model.predict({k: v[:0] for k, v in good.items()}).shape == (0, 2)


def test_runs_as_a_training_script(datasets: dict[str, Path], tmp_path: Path) -> None:
    reports = tmp_path / "reports.jsonl"
    context = TrainingContext(
        model_dir=tmp_path / "model", dataset=str(datasets["multiclass"]), report_file=reports
    )
    env = {**os.environ, **context.to_env()}
    command = [sys.executable, "-m", "ratchet.training.classic", "--kind", "xgboost"]
    done = subprocess.run(
        [*command, "--n_estimators", "4", "--max_depth=3", "--seed", "3", "--threads", "1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in reports.read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 4]
    assert "validation_accuracy" in lines[-1]["metrics"]
    assert load_classic(tmp_path / "model").kind == "xgboost"


def test_the_script_refuses_bad_input_in_one_line(
    datasets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = TrainingContext(model_dir=tmp_path / "model", dataset=str(datasets["binary"]))
    with running(context, lambda s, m: None):
        assert main(["--kind", "xgboost", "--max_depth", "99"]) == 2
        assert main(["--max_depth", "3"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: hyperparameter 'max_depth' must be in [1, 32], got 99",
        "error: give kind (--kind) and a dataset folder in RATCHET_DATASET",
    ]
    assert not (tmp_path / "model").exists()


def test_specs_default_to_legal_values() -> None:
    for spec in SPECS.values():
        for param in spec:
            assert param.check(param.default) == param.default
