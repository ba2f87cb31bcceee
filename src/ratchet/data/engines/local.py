"""The local engine: the whole data pipeline over one source, in process.

Owns the order of the steps and the two passes over the source: the first
computes statistics of all rows and of the training split, from which the schema
(all rows) and the transform (training rows only) are fitted; the second splits
again (the split is a pure function of the row, so both passes agree), applies
the transform and writes the transformed train/validation/test shards plus the
raw test split for batch prediction. The steps themselves are `split`, `stats`,
`schema`, `transform` and `export`; recording the result is the caller's job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ratchet.data.export import ShardWriter
from ratchet.data.io import Quarantine, SourceLike, open_source
from ratchet.data.schema import Schema, infer_schema
from ratchet.data.split import DEFAULT_RATIOS, SPLITS, check_ratios, hash_split
from ratchet.data.stats import DatasetStatistics, StatsAccumulator
from ratchet.data.transform import Transform, fit_transform
from ratchet.errors import InvalidArgument, NotFound

#: Rows per batch: large enough for Arrow's kernels to run at full speed, small enough
#: to keep memory bounded (a few tens of MB for a 20-column table).
BATCH_ROWS = 262_144
#: Top values kept per categorical feature: the vocabulary a transform can learn.
TOP_K = 1000


@dataclass(frozen=True)
class PreparedDataset:
    """What the pipeline produced under `folder`."""

    folder: Path
    statistics: DatasetStatistics
    train_statistics: DatasetStatistics
    schema: Schema
    transform: Transform
    rows: Mapping[str, int]
    shards: Mapping[str, tuple[Path, ...]]
    quarantine: Quarantine


def prepare_dataset(
    source: SourceLike,
    folder: Path,
    *,
    label: str,
    key: str | Sequence[str] | None = None,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    shard_rows: int = 250_000,
    error_budget: float | int | None = None,
    transform_options: Mapping[str, Any] | None = None,
    on_batch: Callable[[str, int], None] | None = None,
) -> PreparedDataset:
    """Read, describe, split, fit, transform and export one source into `folder`.

    `on_batch(phase, rows)` is called after each batch of each pass ("describe", then
    "export"), for a progress display.
    """
    report = on_batch or (lambda phase, rows: None)
    split_ratios = check_ratios(ratios)
    if len(split_ratios) != len(SPLITS):
        raise InvalidArgument(f"give {len(SPLITS)} ratios (train, validation, test)")
    reader = open_source(
        source, errors_path=folder / "errors", error_budget=error_budget, batch_rows=BATCH_ROWS
    )
    if label not in reader.schema.names:
        raise NotFound(
            f"label column {label!r} is not in the data ({', '.join(reader.schema.names)})"
        )
    # One accumulator per split, each row added once; all rows' statistics are their merge.
    per_split = [StatsAccumulator.create(label=label, top_k=TOP_K) for _ in SPLITS]
    assignments: list[npt.NDArray[np.int8]] = []  # the second pass reuses the first's split
    for batch in reader.batches():
        index = hash_split(batch, key=key, ratios=split_ratios)
        assignments.append(index)
        for position, accumulator in enumerate(per_split):
            accumulator.add(batch.filter(pa.array(index == position)))
        report("describe", batch.num_rows)
    everything = StatsAccumulator.create(label=label, top_k=TOP_K)
    for accumulator in per_split:
        everything.merge(accumulator)
    statistics, train_statistics = everything.finish(), per_split[0].finish()
    if statistics.rows == 0:
        raise InvalidArgument("the source has no rows")
    schema = infer_schema(statistics)
    transform = fit_transform(train_statistics, **dict(transform_options or {}))

    writers = {name: ShardWriter(folder / name, shard_rows=shard_rows) for name in SPLITS}
    raw_test = ShardWriter(folder / "raw_test", shard_rows=shard_rows)
    for batch, index in zip(reader.batches(), assignments, strict=True):
        for position, name in enumerate(SPLITS):
            chosen = batch.filter(pa.array(index == position))
            transformed = transform.apply(chosen)
            writers[name].set_schema(transformed.schema)
            if chosen.num_rows:
                writers[name].write(transformed)
            if name == "test":
                raw_test.set_schema(batch.schema)
                if chosen.num_rows:
                    raw_test.write(chosen)
        report("export", batch.num_rows)
    shards = {name: tuple(w.close()) for name, w in writers.items()}
    shards["raw_test"] = tuple(raw_test.close())
    rows = {name: writers[name].rows for name in SPLITS}
    _write_metadata(folder, statistics, train_statistics, schema, transform, rows)
    return PreparedDataset(
        folder, statistics, train_statistics, schema, transform, rows, shards, reader.quarantine
    )


def _write_metadata(
    folder: Path,
    statistics: DatasetStatistics,
    train_statistics: DatasetStatistics,
    schema: Schema,
    transform: Transform,
    rows: Mapping[str, int],
) -> None:
    """The files that make the folder a self-describing dataset version."""
    (folder / "statistics.json").write_text(json.dumps(statistics.to_dict(), sort_keys=True))
    (folder / "train_statistics.json").write_text(
        json.dumps(train_statistics.to_dict(), sort_keys=True)
    )
    schema.save(folder / "schema.yaml")
    (folder / "transform.json").write_text(transform.to_json())
    (folder / "splits.json").write_text(json.dumps(dict(rows), sort_keys=True))
