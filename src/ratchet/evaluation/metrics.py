"""Model quality metrics of one set of rows: pure functions over labels and predictions.

Owns the metric names and their direction (`HIGHER_IS_BETTER`), `Scores` (the
metrics, confusion matrix and reliability bins of one set of rows) and `score`,
which computes them with scikit-learn's metric functions. Classification:
log-loss, ROC AUC, PR AUC (average precision), accuracy, F1, expected
calibration error; regression: RMSE, MAE, R². A metric that a set of rows cannot
define (ROC AUC over one class, R² over one row) is NaN, never an error, so a
small slice does not sink a whole evaluation.

It does not predict (`ratchet.training.bundle`), choose rows (`slices`) or
store anything (`recording`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm  # type: ignore[import-untyped, unused-ignore]

from ratchet.errors import InvalidArgument
from ratchet.training.task import BINARY, Task

Array = npt.NDArray[Any]

CLASSIFICATION_METRICS = ("log_loss", "roc_auc", "pr_auc", "accuracy", "f1", "ece")
REGRESSION_METRICS = ("rmse", "mae", "r2")
HIGHER_IS_BETTER = {
    "log_loss": False,
    "roc_auc": True,
    "pr_auc": True,
    "accuracy": True,
    "f1": True,
    "ece": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
#: Reliability bins: equal-width intervals of [0, 1] over the predicted probability.
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class CalibrationBin:
    """Rows whose predicted probability fell in [low, high): mean prediction vs. outcome."""

    low: float
    high: float
    rows: int
    predicted: float  # NaN for an empty bin
    observed: float


@dataclass(frozen=True)
class Scores:
    """The metrics of one set of rows: all rows ("overall", group "") or one slice."""

    name: str
    group: str
    rows: int
    metrics: Mapping[str, float]
    # Rows are true classes, columns predicted ones, in the order of `Task.classes`.
    confusion: tuple[tuple[int, ...], ...] = ()
    calibration: tuple[CalibrationBin, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "rows": self.rows,
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "confusion": [list(row) for row in self.confusion],
            "calibration": [
                {
                    "low": b.low,
                    "high": b.high,
                    "rows": b.rows,
                    "predicted": _finite_or_none(b.predicted),
                    "observed": _finite_or_none(b.observed),
                }
                for b in self.calibration
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scores:
        return cls(
            name=str(data["name"]),
            group=str(data["group"]),
            rows=int(data["rows"]),
            metrics={k: _float(v) for k, v in data["metrics"].items()},
            confusion=tuple(tuple(int(x) for x in row) for row in data.get("confusion", [])),
            calibration=tuple(
                CalibrationBin(
                    float(b["low"]),
                    float(b["high"]),
                    int(b["rows"]),
                    _float(b["predicted"]),
                    _float(b["observed"]),
                )
                for b in data.get("calibration", [])
            ),
        )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def metric_names(task: Task) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task.classification else REGRESSION_METRICS


def score(
    task: Task, targets: Array, outputs: Array, *, name: str = "overall", group: str = ""
) -> Scores:
    """Metrics of predictions against targets.

    `targets` are encoded labels (`Task.encode`): class ids, or numbers for
    regression; `outputs` are what `Bundle.predict_table` returns: probabilities
    [rows, classes] or values [rows].
    """
    targets, outputs = np.asarray(targets), np.asarray(outputs, dtype=np.float64)
    if len(outputs) != len(targets):
        raise InvalidArgument(f"{len(outputs)} predictions for {len(targets)} labels")
    if not np.isfinite(outputs).all():
        raise InvalidArgument("the model produced non-finite predictions (NaN or infinity)")
    if not task.classification:
        return Scores(name, group, len(targets), regression_metrics(targets, outputs))
    classes = len(task.classes)
    if outputs.ndim != 2 or outputs.shape[1] != classes:
        raise InvalidArgument(
            f"expected probabilities of shape [rows, {classes}], got {list(outputs.shape)}"
        )
    values = classification_metrics(task, targets.astype(np.int64), outputs)
    predicted = np.argmax(outputs, axis=1)
    confusion = (
        skm.confusion_matrix(targets, predicted, labels=list(range(classes)))
        if len(targets)
        else np.zeros((classes, classes), dtype=np.int64)  # scikit-learn refuses no rows
    )
    bins, ece = calibration(task, targets.astype(np.int64), outputs)
    return Scores(
        name,
        group,
        len(targets),
        {**values, "ece": ece},
        confusion=tuple(tuple(int(x) for x in row) for row in confusion),
        calibration=bins,
    )


def classification_metrics(
    task: Task, targets: npt.NDArray[np.int64], probabilities: npt.NDArray[np.float64]
) -> dict[str, float]:
    """log_loss, roc_auc, pr_auc, accuracy and f1 (binary; macro over classes otherwise)."""
    nan = math.nan
    if not len(targets):
        return {name: nan for name in CLASSIFICATION_METRICS if name != "ece"}
    classes = probabilities.shape[1]
    # Rows that do not sum to exactly one (float32 boosters) make log_loss warn: rescale.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    predicted = np.argmax(probabilities, axis=1)
    log_loss = skm.log_loss(targets, probabilities, labels=list(range(classes)))
    if task.kind == BINARY:
        roc_auc, pr_auc = _one_vs_rest(targets == 1, probabilities[:, 1])
        f1 = skm.f1_score(targets, predicted, pos_label=1, average="binary", zero_division=0)
    else:
        # Macro one-vs-rest over the classes the rows can define a curve for: scikit-learn's
        # multi_class="ovr" refuses a slice where a class is absent; this is its value otherwise.
        pairs = [_one_vs_rest(targets == c, probabilities[:, c]) for c in range(classes)]
        roc_auc = _mean([p[0] for p in pairs])
        pr_auc = _mean([p[1] for p in pairs])
        f1 = skm.f1_score(targets, predicted, average="macro", zero_division=0)
    return {
        "log_loss": float(log_loss),
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "accuracy": float(skm.accuracy_score(targets, predicted)),
        "f1": float(f1),
    }


def _one_vs_rest(positive: npt.NDArray[np.bool_], scores: Array) -> tuple[float, float]:
    """ROC AUC (needs both outcomes) and average precision (needs a positive) of one class."""
    positives = int(positive.sum())
    roc = float(skm.roc_auc_score(positive, scores)) if 0 < positives < len(positive) else math.nan
    pr = float(skm.average_precision_score(positive, scores)) if positives else math.nan
    return roc, pr


def _mean(values: list[float]) -> float:
    defined = [v for v in values if math.isfinite(v)]
    return float(np.mean(defined)) if defined else math.nan


def calibration(
    task: Task,
    targets: npt.NDArray[np.int64],
    probabilities: npt.NDArray[np.float64],
    *,
    bins: int = CALIBRATION_BINS,
) -> tuple[tuple[CalibrationBin, ...], float]:
    """Reliability bins and the expected calibration error (ECE).

    Binary: the positive class's probability against the positive rate. Multiclass:
    the top class's probability (the model's confidence) against its accuracy.
    ECE is the row-weighted mean of |observed - predicted| over the bins.
    """
    if task.kind == BINARY:
        confidence, outcome = probabilities[:, 1], targets == 1
    else:
        confidence = probabilities.max(axis=1)
        outcome = np.argmax(probabilities, axis=1) == targets
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    found, ece = [], 0.0
    for b in range(bins):
        chosen = index == b
        rows = int(chosen.sum())
        predicted = float(confidence[chosen].mean()) if rows else math.nan
        observed = float(outcome[chosen].mean()) if rows else math.nan
        if rows:
            ece += rows / len(targets) * abs(observed - predicted)
        found.append(CalibrationBin(b / bins, (b + 1) / bins, rows, predicted, observed))
    return tuple(found), (ece if len(targets) else math.nan)


def regression_metrics(targets: Array, values: npt.NDArray[np.float64]) -> dict[str, float]:
    """rmse, mae and r2 (R² needs two rows; NaN below that)."""
    if not len(targets):
        return {name: math.nan for name in REGRESSION_METRICS}
    targets = targets.astype(np.float64)
    return {
        "rmse": math.sqrt(skm.mean_squared_error(targets, values)),
        "mae": float(skm.mean_absolute_error(targets, values)),
        "r2": float(skm.r2_score(targets, values)) if len(targets) > 1 else math.nan,
    }
