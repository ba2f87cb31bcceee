"""The local engine: the whole data pipeline over one source, in process.

Owns the order of the steps and the two passes over the source: the first
computes statistics of all rows and of the training split, from which the schema
(all rows) and the transform (training rows only) are fitted; the second splits
again (the split is a pure function of the row, so both passes agree), applies
the transform and writes the transformed train/validation/test shards plus the
raw test split for batch prediction. The steps themselves are `split`, `stats`,
`schema`, `transform` and `export`; recording the result is the caller's job.

Both passes are multi-threaded over batches: while the main thread reads the next
batch, worker threads split, describe or transform the ones before it; their
results are folded in (or written) in the order of the batches, so the output is
the same bytes whatever the number of threads.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")
R = TypeVar("R")


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
    threads: int | None = None,
    transform: Transform | None = None,
) -> PreparedDataset:
    """Read, describe, split, fit, transform and export one source into `folder`.

    A given `transform` is applied instead of fitting one: a formalized pipeline keeps
    the transform its model was built for across dataset versions (new categories go
    to the out-of-vocabulary bucket), so the model's inputs keep their shape.

    `on_batch(phase, rows)` is called after each batch of each pass ("describe", then
    "export"), for a progress display. `threads` (default: one per core) work on
    batches while the main thread reads and writes; the result is the same for any
    number.
    """
    report = on_batch or (lambda phase, rows: None)
    split_ratios = check_ratios(ratios)
    if len(split_ratios) != len(SPLITS):
        raise InvalidArgument(f"give {len(SPLITS)} ratios (train, validation, test)")
    threads = os.cpu_count() or 1 if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise InvalidArgument(f"threads must be a positive integer, got {threads!r}")
    reader = open_source(
        source, errors_path=folder / "errors", error_budget=error_budget, batch_rows=BATCH_ROWS
    )
    if label not in reader.schema.names:
        raise NotFound(
            f"label column {label!r} is not in the data ({', '.join(reader.schema.names)})"
        )

    def describe(batch: pa.RecordBatch) -> tuple[npt.NDArray[np.int8], list[StatsAccumulator]]:
        index = hash_split(batch, key=key, ratios=split_ratios)
        parts = [
            StatsAccumulator.create(label=label, top_k=TOP_K).add(
                batch.filter(pa.array(index == position))
            )
            for position in range(len(SPLITS))
        ]
        return index, parts

    # One accumulator per split, each row added once; all rows' statistics are their merge.
    # A batch's partial state is merged in batch order, exactly as `add` would fold it in
    # one thread: the floating-point sums, hence the output bytes, do not depend on threads.
    per_split = [StatsAccumulator.create(label=label, top_k=TOP_K) for _ in SPLITS]
    assignments: list[npt.NDArray[np.int8]] = []  # the second pass reuses the first's split
    for index, parts in _in_order(describe, reader.batches(), threads):
        assignments.append(index)
        for accumulator, part in zip(per_split, parts, strict=True):
            accumulator.merge(part)
        report("describe", len(index))
    everything = StatsAccumulator.create(label=label, top_k=TOP_K)
    for accumulator in per_split:
        everything.merge(accumulator)
    statistics, train_statistics = everything.finish(), per_split[0].finish()
    if statistics.rows == 0:
        raise InvalidArgument("the source has no rows")
    schema = infer_schema(statistics)
    if transform is None:
        transform = fit_transform(train_statistics, **dict(transform_options or {}))

    def export(
        item: tuple[pa.RecordBatch, npt.NDArray[np.int8]],
    ) -> tuple[int, list[pa.Table], pa.RecordBatch]:
        batch, index = item
        chosen = [batch.filter(pa.array(index == position)) for position in range(len(SPLITS))]
        return batch.num_rows, [transform.apply(rows) for rows in chosen], chosen[-1]

    writers = {name: ShardWriter(folder / name, shard_rows=shard_rows) for name in SPLITS}
    raw_test = ShardWriter(folder / "raw_test", shard_rows=shard_rows)
    raw_test.set_schema(reader.schema)
    batches = zip(reader.batches(), assignments, strict=True)
    for read, transformed, test_rows in _in_order(export, batches, threads):
        for name, table in zip(SPLITS, transformed, strict=True):
            writers[name].set_schema(table.schema)
            if table.num_rows:
                writers[name].write(table)
        if test_rows.num_rows:
            raw_test.write(test_rows)
        report("export", read)
    shards = {name: tuple(w.close()) for name, w in writers.items()}
    shards["raw_test"] = tuple(raw_test.close())
    rows = {name: writers[name].rows for name in SPLITS}
    write_metadata(folder, statistics, train_statistics, schema, transform, rows)
    return PreparedDataset(
        folder, statistics, train_statistics, schema, transform, rows, shards, reader.quarantine
    )


def _in_order(work: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """`work` over `items` on `threads` threads, results in the items' order.

    At most 2 * threads items are in flight, so memory stays bounded whatever the
    size of the input; an error in `work` is raised here, in the caller's thread.
    """
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ratchet-data")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def write_metadata(
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


def read_prepared(folder: Path) -> PreparedDataset:
    """A prepared folder read back from the files `write_metadata` and the export left."""
    statistics, train_statistics = (
        DatasetStatistics.from_dict(json.loads((folder / name).read_text()))
        for name in ("statistics.json", "train_statistics.json")
    )
    # The export quarantines malformed rows into `errors/<source stem>.errors.jsonl`.
    errors = sorted((folder / "errors").glob("*.jsonl"))
    quarantined = sum(len(path.read_text().splitlines()) for path in errors)
    return PreparedDataset(
        folder,
        statistics,
        train_statistics,
        Schema.load(folder / "schema.yaml"),
        Transform.from_json((folder / "transform.json").read_text()),
        json.loads((folder / "splits.json").read_text()),
        {name: tuple(sorted((folder / name).glob("*.parquet"))) for name in (*SPLITS, "raw_test")},
        Quarantine(errors[0] if errors else None, quarantined),
    )
