"""Evaluating a model on rows: overall and per slice, fingerprinted by the rows it saw.

Owns `Evaluation` (task, row fingerprint, overall and per-slice `Scores`, and
its JSON form), `evaluate` (a serving bundle on raw labelled rows),
`row_fingerprint` and `compare`. Two evaluations are comparable only when their
fingerprints match: the same rows, whatever their order, so "better" is never
an artefact of different test data. Storing evaluations is `recording`'s; the
promotion rule is `gate`'s.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.errors import InvalidArgument, NotFound
from ratchet.evaluation.metrics import HIGHER_IS_BETTER, Scores, metric_names, score
from ratchet.evaluation.slices import OVERALL, SliceSpecs, masks, slicers
from ratchet.training.bundle import Bundle
from ratchet.training.task import Task

FORMAT = 1  # of the JSON form, stored with it


@dataclass(frozen=True)
class Evaluation:
    """A model's metrics on one set of rows, overall and per slice."""

    task: Task
    fingerprint: str
    overall: Scores
    slices: tuple[Scores, ...] = ()
    unlabelled: int = 0  # rows given without a label, left out of every metric

    @property
    def rows(self) -> int:
        return self.overall.rows

    def scores(self, name: str) -> Scores:
        """The overall scores (`"overall"`) or those of the slice `name`."""
        if name == OVERALL:
            return self.overall
        for found in self.slices:
            if found.name == name:
                return found
        raise NotFound(f"the evaluation has no slice {name!r}")

    def names(self) -> list[str]:
        return [OVERALL, *(s.name for s in self.slices)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task.to_dict(),
            "fingerprint": self.fingerprint,
            "unlabelled": self.unlabelled,
            "overall": self.overall.to_dict(),
            "slices": [s.to_dict() for s in self.slices],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(
            task=Task.from_dict(data["task"]),
            fingerprint=str(data["fingerprint"]),
            overall=Scores.from_dict(data["overall"]),
            slices=tuple(Scores.from_dict(s) for s in data.get("slices", [])),
            unlabelled=int(data.get("unlabelled", 0)),
        )


#: A column name, or one id per row (a sequence or an Arrow array).
RowIds: TypeAlias = "str | Sequence[Any] | pa.Array | pa.ChunkedArray"


def evaluate(
    bundle: Bundle,
    rows: pa.Table,
    *,
    slices: SliceSpecs | None = None,
    row_ids: RowIds | None = None,
) -> Evaluation:
    """Score `bundle` on raw `rows` (features and the label), overall and on `slices`.

    `row_ids` (a column name or one id per row) identify the rows for the
    fingerprint; without them the rows' content does. Rows whose label is missing
    are left out and counted in `unlabelled`.
    """
    task = bundle.task
    if not isinstance(rows, pa.Table):
        raise InvalidArgument(f"rows must be a pyarrow Table, got {type(rows).__name__}")
    if task.label not in rows.column_names:
        raise InvalidArgument(
            f"the rows have no label column {task.label!r}; evaluation needs labelled rows"
        )
    ids = _ids(rows, row_ids)
    # A NaN label (a regression target read from a CSV gap) is as missing as a null.
    labelled = pc.invert(pc.is_null(rows.column(task.label), nan_is_null=True))
    unlabelled = rows.num_rows - int(pc.sum(labelled.cast(pa.int64())).as_py() or 0)
    if unlabelled:
        rows = rows.filter(labelled)
        ids = None if ids is None else ids.filter(labelled)
    if rows.num_rows == 0:
        raise InvalidArgument("there are no labelled rows to evaluate")
    chosen = slicers(slices)
    cut = masks(rows, chosen)  # before predicting: a bad slice fails fast
    targets = _targets(task, rows.column(task.label))
    outputs = np.asarray(bundle.predict_table(rows))
    return Evaluation(
        task=task,
        fingerprint=row_fingerprint(rows, row_ids=ids),
        overall=score(task, targets, outputs),
        slices=tuple(
            score(task, targets[mask], outputs[mask], name=name, group=group)
            for group, name, mask in cut
        ),
        unlabelled=unlabelled,
    )


def _ids(rows: pa.Table, row_ids: RowIds | None) -> pa.ChunkedArray | None:
    if row_ids is None:
        return None
    if isinstance(row_ids, str):
        if row_ids not in rows.column_names:
            raise InvalidArgument(f"row id column {row_ids!r} is not in the data")
        return rows.column(row_ids)
    ids = row_ids if isinstance(row_ids, pa.ChunkedArray) else pa.chunked_array([row_ids])
    if len(ids) != rows.num_rows:
        raise InvalidArgument(f"{len(ids)} row ids for {rows.num_rows} rows")
    return ids


def _targets(task: Task, labels: pa.ChunkedArray) -> Any:
    if task.classification:
        return task.encode(labels.to_numpy(zero_copy_only=False))
    if not (pa.types.is_integer(labels.type) or pa.types.is_floating(labels.type)):
        raise InvalidArgument(f"label {task.label!r} must be numeric for regression")
    return task.encode(labels.to_numpy(zero_copy_only=False))


def row_fingerprint(rows: pa.Table, *, row_ids: RowIds | None = None) -> str:
    """sha256 of the sorted row ids, or of the sorted per-row content hashes.

    Sorting makes it the identity of the set of rows: metrics do not depend on
    their order. The two schemes hash different prefixes, so an id fingerprint
    never equals a content one.
    """
    digest = hashlib.sha256()
    ids = _ids(rows, row_ids)
    if ids is not None:
        digest.update(b"ratchet row ids\n")
        for value in sorted(str(v) for v in ids.to_pylist()):
            digest.update(value.encode() + b"\n")
        return digest.hexdigest()
    digest.update(b"ratchet row content\n")
    names = sorted(rows.column_names)
    digest.update("\t".join(names).encode() + b"\n")
    frame = pd.DataFrame(
        {name: _hashable(rows.column(name)) for name in names}, index=range(rows.num_rows)
    )
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest.update(np.sort(hashes).astype("<u8").tobytes())
    return digest.hexdigest()


def _hashable(column: pa.ChunkedArray) -> Any:
    nested = pa.types.is_nested(column.type)
    # pandas cannot hash lists or dicts: nested values are hashed by their text.
    return [str(v) for v in column.to_pylist()] if nested else column.to_pandas()


def check_comparable(a: Evaluation, b: Evaluation) -> None:
    """Refuse two evaluations that are not on the same rows of the same task."""
    if a.fingerprint != b.fingerprint:
        raise InvalidArgument(
            f"the evaluations are on different rows (fingerprints {a.fingerprint[:12]} and "
            f"{b.fingerprint[:12]}); evaluate both models on the same rows"
        )
    if a.task != b.task:
        raise InvalidArgument(
            f"the evaluations are of different tasks ({a.task.kind} on {a.task.label!r} and "
            f"{b.task.kind} on {b.task.label!r})"
        )


@dataclass(frozen=True)
class Comparison:
    """One metric of one slice for two models; `better` is "a", "b" or "" (tie, undefined)."""

    slice: str
    group: str
    rows: int
    metric: str
    a: float
    b: float
    delta: float  # b - a
    better: str


def compare(a: Evaluation, b: Evaluation) -> list[Comparison]:
    """Every metric of every slice the two evaluations share, overall first."""
    check_comparable(a, b)
    found = []
    shared = [name for name in a.names() if name in set(b.names())]
    for name in shared:
        left, right = a.scores(name), b.scores(name)
        for metric in metric_names(a.task):
            x, y = left.metrics.get(metric, math.nan), right.metrics.get(metric, math.nan)
            better = ""
            if math.isfinite(x) and math.isfinite(y) and x != y:
                better = "b" if (y > x) == HIGHER_IS_BETTER[metric] else "a"
            found.append(Comparison(name, left.group, left.rows, metric, x, y, y - x, better))
    return found
