"""Evaluating real bundles: metrics, the row fingerprint, comparison, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import log_loss, roc_auc_score  # type: ignore[import-untyped, unused-ignore]

from ratchet.errors import InvalidArgument, NotFound
from ratchet.evaluation import Evaluation, compare, evaluate, row_fingerprint
from ratchet.training.bundle import Bundle, load_bundle


def test_overall_metrics_match_scikit_learn_on_the_bundles_predictions(
    raw_test: pa.Table, lightgbm: Bundle
) -> None:
    evaluation = evaluate(lightgbm, raw_test)
    targets = raw_test.column("churned").to_numpy()
    probabilities = lightgbm.predict_table(raw_test)
    assert evaluation.rows == raw_test.num_rows and evaluation.unlabelled == 0
    assert evaluation.overall.metrics["log_loss"] == pytest.approx(
        log_loss(targets, probabilities / probabilities.sum(axis=1, keepdims=True))
    )
    assert evaluation.overall.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(targets, probabilities[:, 1])
    )
    assert evaluation.task == lightgbm.task


def test_multiclass_and_regression_bundles(other_tasks: dict[str, Path]) -> None:
    for kind, metric in (("multiclass", "roc_auc"), ("regression", "r2")):
        rows = pq.read_table(other_tasks[f"{kind}-data"] / "raw_test")
        evaluation = evaluate(load_bundle(other_tasks[kind]), rows, slices=["color"])
        assert evaluation.task.kind == kind
        assert 0.6 < evaluation.overall.metrics[metric] <= 1.0  # the signal is learnable
        assert len(evaluation.slices) == 3


def test_the_fingerprint_is_the_set_of_rows(raw_test: pa.Table, logistic: Bundle) -> None:
    shuffled = raw_test.take(np.random.default_rng(0).permutation(raw_test.num_rows))
    assert row_fingerprint(raw_test) == row_fingerprint(shuffled)
    assert row_fingerprint(raw_test) != row_fingerprint(raw_test.slice(1))
    changed = raw_test.set_column(0, "a", pa.array([0.0, *raw_test["a"].to_pylist()[1:]]))
    assert row_fingerprint(raw_test) != row_fingerprint(changed)
    ids = [f"row-{i}" for i in range(raw_test.num_rows)]
    with_ids = raw_test.append_column("id", pa.array(ids))
    by_ids = row_fingerprint(with_ids, row_ids="id")
    assert by_ids == row_fingerprint(raw_test, row_ids=list(reversed(ids)))
    assert by_ids != row_fingerprint(with_ids)  # ids and content never match each other
    assert evaluate(logistic, with_ids, row_ids="id").fingerprint == by_ids
    assert evaluate(logistic, shuffled).fingerprint == evaluate(logistic, raw_test).fingerprint


def test_compare_reports_every_metric_per_slice_on_identical_rows(
    raw_test: pa.Table, logistic: Bundle, lightgbm: Bundle
) -> None:
    a = evaluate(logistic, raw_test, slices=["color"])
    b = evaluate(lightgbm, raw_test, slices=["color"])
    rows = compare(a, b)
    assert [r.slice for r in rows[::6]] == ["overall", *(s.name for s in a.slices)]
    overall = {r.metric: r for r in rows if r.slice == "overall"}
    assert set(overall) == {"log_loss", "roc_auc", "pr_auc", "accuracy", "f1", "ece"}
    loss = overall["log_loss"]
    assert loss.delta == pytest.approx(loss.b - loss.a)
    assert loss.better == ("a" if loss.a < loss.b else "b")  # lower log-loss is better
    auc = overall["roc_auc"]
    assert auc.better == ("a" if auc.a > auc.b else "b")
    with pytest.raises(InvalidArgument, match="different rows"):
        compare(a, evaluate(lightgbm, raw_test.slice(10)))


def test_labels_are_required_and_missing_ones_counted(raw_test: pa.Table, logistic: Bundle) -> None:
    with pytest.raises(InvalidArgument, match="no label column 'churned'"):
        evaluate(logistic, raw_test.drop_columns(["churned"]))
    labels = raw_test["churned"].to_pylist()
    gaps = raw_test.set_column(
        raw_test.schema.get_field_index("churned"), "churned", pa.array([None, None, *labels[2:]])
    )
    evaluation = evaluate(logistic, gaps)
    assert (evaluation.unlabelled, evaluation.rows) == (2, raw_test.num_rows - 2)
    assert evaluation.fingerprint == row_fingerprint(gaps.slice(2))
    with pytest.raises(NotFound, match="column 'a' is missing"):
        evaluate(logistic, raw_test.drop_columns(["a"]))
    with pytest.raises(InvalidArgument, match="label '7' is not one of the task's classes"):
        evaluate(logistic, raw_test.set_column(4, "churned", pa.array([7] * raw_test.num_rows)))
    with pytest.raises(InvalidArgument, match="no labelled rows"):
        evaluate(logistic, raw_test.slice(0, 0))


def test_json_round_trip_keeps_undefined_metrics(raw_test: pa.Table, logistic: Bundle) -> None:
    # One row per slice: AUC is undefined there, stored as null, read back as NaN.
    evaluation = evaluate(logistic, raw_test.slice(0, 3), slices=["a"])
    again = Evaluation.from_dict(evaluation.to_dict())
    assert again.fingerprint == evaluation.fingerprint and again.task == evaluation.task
    assert math.isnan(again.slices[0].metrics["roc_auc"])
    assert again.overall == evaluation.overall
    assert [s.rows for s in again.slices] == [1, 1, 1]
