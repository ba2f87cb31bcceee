"""Metric values against ones worked out by hand on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped, unused-ignore]

from ratchet.errors import InvalidArgument
from ratchet.evaluation import score
from ratchet.training.task import BINARY, MULTICLASS, REGRESSION, Task

BINARY_TASK = Task(BINARY, "y", ("0", "1"))
THREE = Task(MULTICLASS, "y", ("a", "b", "c"))


def test_binary_metrics_by_hand() -> None:
    targets = np.array([0, 1, 1, 0])
    positive = np.array([0.1, 0.8, 0.25, 0.3])
    scores = score(BINARY_TASK, targets, np.column_stack([1 - positive, positive]))
    m = scores.metrics
    assert m["log_loss"] == pytest.approx(-(math.log(0.9 * 0.8 * 0.25 * 0.7)) / 4)
    # Positive scores 0.8 and 0.25 against negative 0.1 and 0.3: 3 of 4 pairs ranked right.
    assert m["roc_auc"] == pytest.approx(0.75)
    # Ranked 0.8 (pos), 0.3 (neg), 0.25 (pos): recall 1/2 at precision 1, then 1 at 2/3.
    assert m["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["accuracy"] == pytest.approx(0.75)  # predicted 0, 1, 0, 0
    assert m["f1"] == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert scores.confusion == ((2, 0), (1, 1))
    assert scores.rows == 4
    # One row per bin: |observed - predicted| = 0.1, 0.75, 0.3, 0.2.
    assert m["ece"] == pytest.approx((0.1 + 0.75 + 0.3 + 0.2) / 4)
    filled = [b for b in scores.calibration if b.rows]
    assert [(b.low, b.rows, b.observed) for b in filled] == [
        (0.1, 1, 0.0), (0.2, 1, 1.0), (0.3, 1, 0.0), (0.8, 1, 1.0)
    ]  # fmt: skip
    assert len(scores.calibration) == 10 and sum(b.rows for b in scores.calibration) == 4


def test_multiclass_metrics_by_hand() -> None:
    targets = np.array([0, 1, 2, 1])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])
    scores = score(THREE, targets, probabilities)
    m = scores.metrics
    assert m["log_loss"] == pytest.approx(-math.log(0.7 * 0.6 * 0.3 * 0.3) / 4)
    assert m["accuracy"] == pytest.approx(0.5)  # predicted 0, 1, 1, 2
    assert m["f1"] == pytest.approx((1 + 0.5 + 0) / 3)  # macro over the three classes
    # One-vs-rest AUC per class: 1, 3/4 and (1 + 0.5 tie + 0) / 3, then their mean.
    assert m["roc_auc"] == pytest.approx((1 + 0.75 + 0.5) / 3)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(targets, probabilities, multi_class="ovr"))
    # Average precision per class: 1, 1/2 + 1/2 * 2/3, and 1/3 (a tie at the only positive).
    assert m["pr_auc"] == pytest.approx((1 + (0.5 + 1 / 3) + 1 / 3) / 3)
    assert scores.confusion == ((1, 0, 0), (0, 1, 1), (0, 1, 0))
    # Confidence (top probability) against whether the top class was right.
    assert m["ece"] == pytest.approx((0.3 + 0.4 + 0.5 + 0.4) / 4)


def test_regression_metrics_by_hand() -> None:
    scores = score(Task(REGRESSION, "y"), np.array([1, 2, 3, 4]), np.array([1.5, 2, 2, 5]))
    assert scores.metrics == pytest.approx({"rmse": 0.75, "mae": 0.625, "r2": 1 - 2.25 / 5})
    assert scores.confusion == () and scores.calibration == ()


def test_undefined_metrics_are_nan_not_errors() -> None:
    only_negatives = score(BINARY_TASK, np.array([0, 0]), np.array([[0.9, 0.1], [0.6, 0.4]]))
    assert math.isnan(only_negatives.metrics["roc_auc"])
    assert math.isnan(only_negatives.metrics["pr_auc"])
    assert only_negatives.metrics["accuracy"] == 1.0
    # Class c is absent: AUC is the mean over the classes that can define a curve.
    two_of_three = score(THREE, np.array([0, 1]), np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]]))
    assert two_of_three.metrics["roc_auc"] == 1.0
    empty = score(THREE, np.array([], dtype=np.int64), np.zeros((0, 3)))
    assert empty.rows == 0 and all(math.isnan(v) for v in empty.metrics.values())
    one_row = score(Task(REGRESSION, "y"), np.array([2.0]), np.array([1.0]))
    assert math.isnan(one_row.metrics["r2"]) and one_row.metrics["mae"] == 1.0


def test_rows_need_not_sum_to_exactly_one() -> None:
    """Boosters hand out float32 rows; log-loss rescales instead of warning (warnings fail)."""
    rows = np.array([[0.3, 0.7000001], [0.6, 0.4]], dtype=np.float32)
    assert score(BINARY_TASK, np.array([1, 0]), rows).metrics["log_loss"] == pytest.approx(
        -math.log(0.7 * 0.6) / 2, rel=1e-6
    )


def test_bad_predictions_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="non-finite"):
        score(BINARY_TASK, np.array([0, 1]), np.array([[0.5, 0.5], [math.nan, 0.5]]))
    with pytest.raises(InvalidArgument, match="shape"):
        score(THREE, np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(InvalidArgument, match="3 predictions for 2 labels"):
        score(Task(REGRESSION, "y"), np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
