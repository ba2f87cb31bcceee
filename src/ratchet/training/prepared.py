"""A prepared dataset folder as the trainers that read it whole see it: the classic models
and the AutoML baseline.

Owns `describe` (the task the folder poses, from its train statistics, and its
transform) and `labelled_rows` (one split's feature columns and encoded labels).
It does not prepare datasets (`ratchet.data.engines`) nor stream them in batches
(`ratchet.feeder`, what the MLP trains on).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ratchet.data.stats import DatasetStatistics
from ratchet.data.transform import Transform
from ratchet.errors import NotFound
from ratchet.training.task import Task, detect_task

Array = npt.NDArray[Any]
Columns = dict[str, Array]


def describe(dataset: Path) -> tuple[Task, Transform]:
    """The task a prepared dataset folder poses (from its train statistics) and its transform."""
    try:
        statistics = json.loads((dataset / "train_statistics.json").read_text())
        transform = (dataset / "transform.json").read_text()
    except FileNotFoundError as e:
        raise NotFound(
            f"{dataset} is not a prepared dataset folder ({Path(e.filename).name} is missing)"
        ) from e
    return detect_task(DatasetStatistics.from_dict(statistics)), Transform.from_json(transform)


def labelled_rows(
    dataset: Path, split: str, task: Task, features: Sequence[str]
) -> tuple[Columns, Array] | None:
    """Feature columns and encoded labels of one split, every shard of it, rows without a
    label dropped; None when no labelled row is left."""
    shards = sorted((dataset / split).glob("*.parquet"))
    tables = [pq.read_table(path, columns=[*features, task.label]) for path in shards]
    if not tables:
        return None
    table = pa.concat_tables(tables)
    table = table.filter(pc.is_valid(table.column(task.label)))
    if table.num_rows == 0:
        return None
    labels = table.column(task.label).to_numpy(zero_copy_only=False)
    return {name: table.column(name).to_numpy() for name in features}, task.encode(labels)
