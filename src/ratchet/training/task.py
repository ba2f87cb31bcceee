"""The learning task a dataset poses, read off its label statistics, and label encoding.

Owns `Task` (binary, multiclass or regression; the classes in a fixed order) and
its detection: a text label, or a numeric label with few distinct integer values,
is classification; any other numeric label is regression. Every trainer and the
evaluation encode labels through the same `Task`, so class ids agree everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ratchet.data.stats import DatasetStatistics
from ratchet.errors import InvalidArgument

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
#: A numeric label with at most this many distinct integer values is a class label.
MAX_CLASSES = 20


@dataclass(frozen=True)
class Task:
    kind: str
    label: str
    classes: tuple[str, ...] = ()

    @property
    def classification(self) -> bool:
        return self.kind != REGRESSION

    @property
    def outputs(self) -> int:
        """Model outputs: one logit for binary and regression, one per class otherwise."""
        return len(self.classes) if self.kind == MULTICLASS else 1

    def encode(self, labels: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Class ids (int64) for classification, float32 targets for regression."""
        values = np.asarray(labels)
        if not self.classification:
            return values.astype(np.float32)
        # Map the few distinct labels, not every row: this runs on every training step.
        uniques, inverse = np.unique(values, return_inverse=True)
        lookup = {name: i for i, name in enumerate(self.classes)}
        try:
            ids = np.array([lookup[_key(v)] for v in uniques.tolist()], dtype=np.int64)
        except KeyError as e:
            raise InvalidArgument(
                f"label {e.args[0]!r} is not one of the task's classes {list(self.classes)}"
            ) from None
        return ids[inverse.reshape(-1)] if len(ids) else np.zeros(0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(data["kind"], data["label"], tuple(data.get("classes", ())))


def _key(value: Any) -> str:
    """A class's name: booleans and integral floats (1.0 from a CSV) name the same class as ints."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def detect_task(statistics: DatasetStatistics) -> Task:
    if statistics.label is None:
        raise InvalidArgument("the statistics name no label column; give label= when preparing")
    label = statistics.feature(statistics.label)
    numeric, categorical = label.numeric, label.categorical
    if categorical is not None:
        names = sorted({_key(v) for v, _ in categorical.top}, key=_class_order)
    elif numeric is not None and label.type in ("int", "bool") and numeric.min is not None:
        # An integer label over a short range is a class id (0/1, ratings 1..5).
        low, high = int(numeric.min), int(numeric.max or numeric.min)
        if high - low + 1 > MAX_CLASSES:
            return Task(REGRESSION, label.name)
        names = [str(value) for value in range(low, high + 1)]
    elif numeric is not None and numeric.count:
        return Task(REGRESSION, label.name)
    else:
        raise InvalidArgument(f"label {label.name!r} has no values")
    if len(names) < 2:
        raise InvalidArgument(f"label {label.name!r} has fewer than two classes")
    return Task(BINARY if len(names) == 2 else MULTICLASS, label.name, tuple(names))


def _class_order(name: str) -> tuple[int, float | str]:
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)
