"""The AutoML baseline: real FLAML searches with budgets of a few seconds, run once per module."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from training_data import frame, prepared

from ratchet import datasets
from ratchet.artifacts import ArtifactStore, hash_path
from ratchet.baseline import (
    AUTOML,
    DEFAULT_ESTIMATORS,
    FLOOR_LINEAR,
    FLOOR_MAJORITY,
    BaselineResult,
    describe,
    record_baseline,
    run_baseline,
)
from ratchet.data.engines.local import PreparedDataset, prepare_dataset
from ratchet.errors import AlreadyExists, InvalidArgument, NotFound
from ratchet.evaluation import evaluate
from ratchet.metadata import Artifact, MetadataStore
from ratchet.registry import BASELINE, Registry
from ratchet.training.bundle import load_bundle
from ratchet.training.classic import train_classic

Searched = tuple[PreparedDataset, BaselineResult]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Searched:
    root = tmp_path_factory.mktemp("baseline")
    data = prepared(root / "data", rows=2000)
    result = run_baseline(data.folder, root / "out", budget_seconds=4, seed=0, n_jobs=1)
    return data, result


def _other_task(root: Path, kind: str) -> PreparedDataset:
    data = frame(1500, seed=1).drop(columns="churned")
    rng = np.random.default_rng(1)
    if kind == "multiclass":
        score = data.a + rng.normal(scale=0.3, size=len(data))
        data["tier"] = np.where(score > 0.5, "gold", np.where(score > -0.5, "silver", "bronze"))
        label = "tier"
    else:
        noise = rng.normal(scale=0.3, size=len(data))
        data["spend"] = 3 * data.a - 2 * data.b + (data.color == "red") * 1.5 + noise
        label = "spend"
    return prepare_dataset(data, root / kind, label=label, shard_rows=1000)


def test_binary_task_and_default_metric(searched: Searched) -> None:
    data, result = searched
    assert describe(data.folder)[0].kind == "binary"
    assert (result.task.kind, result.metric) == ("binary", "log_loss")
    assert [m.kind for m in result.models] == [AUTOML, FLOOR_MAJORITY, FLOOR_LINEAR]
    assert [m.estimator for m in result.models[1:]] == ["majority", "sklearn-logistic"]
    assert result.trials >= 1
    assert result.automl.estimator in DEFAULT_ESTIMATORS[True]
    assert result.best_config  # the winning hyperparameters


@pytest.mark.parametrize(
    ("kind", "classes", "metric", "floors"),
    [
        ("multiclass", ("bronze", "gold", "silver"), "log_loss", ["majority", "sklearn-logistic"]),
        ("regression", (), "rmse", ["mean", "sklearn-linear"]),
    ],
)
def test_other_tasks_are_detected_and_searched(
    tmp_path: Path, kind: str, classes: tuple[str, ...], metric: str, floors: list[str]
) -> None:
    data = _other_task(tmp_path, kind)
    task, _ = describe(data.folder)
    assert (task.kind, task.classes) == (kind, classes)
    result = run_baseline(
        data.folder, tmp_path / "out", budget_seconds=1, estimators=["lgbm"], n_jobs=1
    )
    assert (result.task, result.metric) == (task, metric)
    assert result.automl.estimator == "lgbm"
    assert [m.estimator for m in result.models[1:]] == floors
    raw = pq.read_table(data.folder / "raw_test")
    shape = (raw.num_rows, len(classes)) if classes else (raw.num_rows,)
    for model in result.models:
        assert load_bundle(model.folder).predict_table(raw).shape == shape
    automl, majority, _ = result.models
    key = f"validation_{metric}"
    assert automl.metrics[key] < majority.metrics[key]
    if kind == "regression":
        # The mean floor predicts the train split's mean label everywhere.
        train = pd.concat(pq.read_table(p).to_pandas() for p in (data.folder / "train").iterdir())
        assert load_bundle(majority.folder).predict_table(raw)[0] == pytest.approx(
            train["spend"].mean()
        )
        assert automl.metrics["validation_loss"] == pytest.approx(automl.metrics[key] ** 2)


def test_baseline_beats_the_majority_floor(searched: Searched) -> None:
    _, result = searched
    automl, majority, linear = result.models
    for split in ("validation", "test"):
        assert automl.metrics[f"{split}_log_loss"] < majority.metrics[f"{split}_log_loss"] - 0.1
        assert automl.metrics[f"{split}_accuracy"] > majority.metrics[f"{split}_accuracy"]
    assert linear.metrics["validation_log_loss"] < majority.metrics["validation_log_loss"]


def test_the_floor_is_the_train_split_prior_and_the_classic_linear_model(
    searched: Searched, tmp_path: Path
) -> None:
    data, result = searched
    _, majority, linear = result.models
    labels = pd.concat(
        pq.read_table(p, columns=["churned"]).to_pandas() for p in (data.folder / "train").iterdir()
    )["churned"]
    prior = labels.value_counts(normalize=True).sort_index().to_numpy()
    manifest = json.loads((majority.folder / "model.json").read_text())
    assert manifest["framework"] == "constant"
    assert manifest["values"] == pytest.approx(prior.tolist())
    raw = pq.read_table(data.folder / "raw_test")
    predicted = load_bundle(majority.folder).predict_table(raw)
    assert np.argmax(predicted, axis=1).tolist() == [int(np.argmax(prior))] * raw.num_rows
    # The linear floor is exactly the classic trainer's model, with the same seed.
    own = train_classic("sklearn-logistic", {}, dataset=data.folder, model_dir=tmp_path / "lr")
    assert linear.metrics["validation_loss"] == pytest.approx(own["validation_loss"])
    assert linear.metrics["test_accuracy"] == pytest.approx(own["test_accuracy"])
    assert json.loads((linear.folder / "model.json").read_text())["metrics"] == dict(linear.metrics)


def test_flaml_scored_the_dataset_validation_split(searched: Searched) -> None:
    data, result = searched
    assert result.validation_rows == data.rows["validation"]
    search = json.loads((result.automl.folder / "model.json").read_text())["search"]
    assert search["validation_rows"] == data.rows["validation"]
    assert search["budget_seconds"] == 4 and search["metric"] == "log_loss"
    # FLAML's best loss is the saved model's log-loss on that split: same rows, same metric.
    best = search["best_loss_per_estimator"][result.automl.estimator]
    assert best == pytest.approx(result.automl.metrics["validation_log_loss"], rel=1e-6)


def test_the_bundle_loads_and_predicts_raw_rows(searched: Searched) -> None:
    data, result = searched
    bundle = load_bundle(result.automl.folder)
    assert bundle.framework == "flaml"
    assert [f["name"] for f in bundle.inputs] == ["a", "b", "color", "city"]
    raw = pq.read_table(data.folder / "raw_test")
    probabilities = bundle.predict_table(raw)
    assert probabilities.shape == (raw.num_rows, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    labels = raw.column("churned").to_numpy()
    chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1)
    assert -np.mean(np.log(chosen)) == pytest.approx(result.automl.metrics["test_log_loss"])
    record = {"a": 2.0, "b": -1.0, "color": "never seen", "city": "7"}
    assert bundle.predict_records([record]).shape == (1, 2)
    assert bundle.predict_table(raw.slice(0, 0)).shape == (0, 2)


def test_metrics_agree_with_ratchet_evaluation(searched: Searched) -> None:
    data, result = searched
    raw = pq.read_table(data.folder / "raw_test")
    for model in result.models:
        overall = evaluate(load_bundle(model.folder), raw).overall.metrics
        for name in ("log_loss", "roc_auc", "pr_auc", "accuracy", "f1"):
            assert model.metrics[f"test_{name}"] == pytest.approx(overall[name]), name


def test_versions_alias_and_lineage_to_the_dataset(
    searched: Searched, store: MetadataStore, tmp_path: Path
) -> None:
    data, result = searched
    artifacts = ArtifactStore(str(tmp_path / "artifacts"))
    dataset, _ = datasets.record_dataset(
        store,
        artifacts,
        data,
        name="churn",
        source="frame",
        version=hash_path(data.folder),
        started=time.time(),
    )
    registry = Registry(store, artifacts)
    versions = record_baseline(registry, result, name="churn-baseline", dataset=dataset)
    assert [v.labels["kind"] for v in versions] == [AUTOML, FLOOR_MAJORITY, FLOOR_LINEAR]
    assert [v.version for v in versions] == [3, 1, 2]  # the AutoML model is the newest
    assert [v.framework for v in versions] == ["flaml", "constant", "sklearn"]
    assert registry.aliases("churn-baseline") == {BASELINE: 3}
    assert registry.get("churn-baseline:baseline").labels["estimator"] == result.automl.estimator
    assert len({v.labels["run"] for v in versions}) == 1
    for version, model in zip(versions, result.models, strict=True):
        assert version.metrics == pytest.approx(dict(model.metrics))
        assert version.labels["metric"] == "log_loss"
        graph = store.lineage(artifact_id=version.artifact_id, direction="upstream", depth=2)
        assert dataset.id in {a.id for a in graph.artifacts}
    bundle, version = registry.load("churn-baseline:baseline")
    raw = pq.read_table(data.folder / "raw_test")
    assert bundle.predict_table(raw).shape == (raw.num_rows, 2)
    # A second run adds three versions and moves the alias to its AutoML model.
    again = record_baseline(registry, result, name="churn-baseline", dataset=dataset)
    assert registry.aliases("churn-baseline") == {BASELINE: again[0].version} == {BASELINE: 6}
    with pytest.raises(InvalidArgument, match="must be a recorded Dataset"):
        record_baseline(registry, result, name="x", dataset=Artifact("Model", uri="m"))


def test_bad_arguments_fail_before_any_search(searched: Searched, tmp_path: Path) -> None:
    data, _ = searched
    out = tmp_path / "out"
    for budget in (0, -3, float("nan")):
        with pytest.raises(InvalidArgument, match="budget must be more than 0 seconds"):
            run_baseline(data.folder, out, budget_seconds=budget)
    with pytest.raises(InvalidArgument, match="unknown metric 'bogus'; one of log_loss, roc_auc"):
        run_baseline(data.folder, out, metric="bogus")
    with pytest.raises(InvalidArgument, match="unknown metric 'rmse' for binary"):
        run_baseline(data.folder, out, metric="rmse")
    with pytest.raises(InvalidArgument, match="unknown estimator 'catboost'"):
        run_baseline(data.folder, out, estimators=["catboost"])
    with pytest.raises(InvalidArgument, match="n_jobs must be -1"):
        run_baseline(data.folder, out, n_jobs=0)
    with pytest.raises(NotFound, match="is not a prepared dataset folder"):
        run_baseline(tmp_path, out)
    (out / "old").mkdir(parents=True)
    with pytest.raises(AlreadyExists, match="is not empty"):
        run_baseline(data.folder, out)
