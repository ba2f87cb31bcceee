"""The Beam engine: the same pure steps as an Apache Beam pipeline, for data past one machine.

Owns the Beam wiring only. Reading happens inside the pipeline: the driver lists
the source's files and fixes its schema (types inferred once, so every file
agrees), then each file is read on a worker by ratchet's own reader, its malformed
rows quarantined to an errors file of its own. Statistics are a `CombineFn` around
`StatsAccumulator` (create, add, merge, finish), splits and transforms are
`FlatMap`s around `hash_split` and `Transform.apply`, and the export writes each
batch's splits as Parquet shards named after the file and batch they came from, so
a split's folder, read in name order, holds the local engine's rows in the local
engine's order. Nothing is computed differently from the local engine, which is
what the engine-equality tests check. `runner` and the pipeline options pass
through (DirectRunner by default: the Prism runner downloads a binary on first
use, which this machine cannot).

Tables in memory (pandas, Arrow) and database queries are read on the driver and
enter the pipeline through `beam.Create`: they are in memory already. Results come
back, and quarantined rows go, through files under folders both the driver and
the workers can reach (local folders on DirectRunner; a shared path on a cluster).
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

from ratchet.data.engines.local import BATCH_ROWS, TOP_K, PreparedDataset, write_metadata
from ratchet.data.export import ShardWriter
from ratchet.data.io import Quarantine, SourceLike, check_error_budget, open_source, source_files
from ratchet.data.schema import infer_schema
from ratchet.data.split import DEFAULT_RATIOS, SPLITS, check_ratios, hash_split
from ratchet.data.stats import DatasetStatistics, StatsAccumulator
from ratchet.data.transform import Transform, fit_transform
from ratchet.errors import InvalidArgument, NotFound

logger = logging.getLogger(__name__)

DEFAULT_RUNNER = "DirectRunner"
#: The read's side output: (file number, rows quarantined from that file).
QUARANTINED = "quarantined"


class StatisticsCombineFn(beam.CombineFn):
    """`StatsAccumulator` as a Beam combiner: per-bundle partial states, merged, finished.

    With `finish=False` the output is the merged accumulator itself, for a caller
    that merges it further (all rows' statistics from the per-split ones).
    """

    def __init__(self, options: Mapping[str, Any], *, finish: bool = True) -> None:
        super().__init__()
        self.options = dict(options)
        self.finish = finish

    def create_accumulator(self) -> StatsAccumulator:
        return StatsAccumulator.create(**self.options)

    def add_input(self, accumulator: StatsAccumulator, batch: pa.RecordBatch) -> StatsAccumulator:
        return accumulator.add(batch)

    def merge_accumulators(self, accumulators: Iterable[StatsAccumulator]) -> StatsAccumulator:
        merged = StatsAccumulator.create(**self.options)
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: StatsAccumulator) -> Any:
        return accumulator.finish() if self.finish else accumulator


@dataclass(frozen=True)
class _Plan:
    """A source as the pipeline reads it: its files, or its batches read on the driver."""

    name: str
    schema: pa.Schema
    files: tuple[str, ...]
    batches: tuple[pa.RecordBatch, ...]
    errors: Path
    budget: float | int | None
    quarantined: int  # rows the driver's own read quarantined (sources in memory)


def _plan(source: SourceLike, errors: Path | None, budget: float | int | None) -> _Plan:
    """Open the source on the driver: its schema, and its files or (in memory) its batches."""
    if errors is None:
        errors = Path(tempfile.gettempdir()) / "ratchet-quarantine" / uuid.uuid4().hex[:12]
    reader = open_source(
        source,
        errors_path=errors,
        error_budget=budget,
        batch_rows=BATCH_ROWS,
    )
    files = source_files(source)
    if files is not None:
        paths = tuple(str(f) for f in files)
        return _Plan(reader.name, reader.schema, paths, (), errors, budget, 0)
    batches = tuple(reader.batches())
    count = reader.quarantine.count
    return _Plan(reader.name, reader.schema, (), batches, errors, budget, count)


def _read(pipeline: beam.Pipeline, plan: _Plan) -> tuple[Any, Any]:
    """The source's batches keyed by (file number, batch number), and the quarantine counts."""
    if not plan.files:
        keyed = [((0, i), batch) for i, batch in enumerate(plan.batches)]
        batches = pipeline | "Batches" >> beam.Create(keyed)
        return batches, pipeline | "NoQuarantine" >> beam.Create([])
    read = (
        pipeline
        | "Files" >> beam.Create(list(enumerate(plan.files)))
        # Breaks fusion with Create, so a runner can hand the files to many workers.
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(_read_file, plan).with_outputs(QUARANTINED, main="batches")
    )
    return read.batches, read[QUARANTINED]


def _read_file(item: tuple[int, str], plan: _Plan) -> Iterator[Any]:
    """One file's batches, read by ratchet's reader with the driver's schema."""
    number, path = item
    names = plan.schema.names
    reader = open_source(
        Path(path),
        columns={field.name: field.type for field in plan.schema},
        batch_rows=BATCH_ROWS,
        errors_path=plan.errors / f"{number:05d}-{Path(path).name}.errors.jsonl",
        # A count that one file exceeds, the whole source exceeds: fail early. A fraction
        # is a property of the whole and is checked on the driver at the end.
        error_budget=plan.budget if isinstance(plan.budget, int) else None,
        # One empty file, or one whose rows are all malformed, is no error in a source
        # of many: the driver judges the whole.
        empty_ok=True,
    )
    if sorted(reader.schema.names) != sorted(names):
        raise InvalidArgument(f"{path} has columns {reader.schema.names}, not {names}")
    for position, batch in enumerate(reader.batches()):
        yield (number, position), batch.select(names)
    yield beam.pvalue.TaggedOutput(QUARANTINED, ((number,), reader.quarantine.count))


def _account(plan: _Plan, counts: Iterable[int], *, good: int) -> Quarantine:
    """The whole source's quarantine, checked against the error budget and for emptiness."""
    bad = plan.quarantined + sum(counts)
    check_error_budget(plan.name, plan.budget, bad=bad, good=good, where=plan.errors)
    if good == 0:
        detail = f": all {bad} are quarantined under {plan.errors}" if bad else ""
        raise InvalidArgument(f"{plan.name} has no valid rows{detail}")
    if bad:
        logger.warning("%d malformed rows of %s quarantined under %s", bad, plan.name, plan.errors)
    return Quarantine(plan.errors if bad else None, bad)


def _options(runner: str, options: Sequence[str] | None) -> PipelineOptions:
    return PipelineOptions([f"--runner={runner}", *(options or [])])


def _save(item: tuple[tuple[int, ...], Any], folder: str) -> None:
    key, value = item
    name = "-".join(f"{k:012d}" for k in key)
    with open(f"{folder}/{name}-{uuid.uuid4().hex}.pkl", "wb") as f:
        pickle.dump(value, f)


def _run(
    build: Callable[[beam.Pipeline], Mapping[str, Any]],
    runner: str,
    options: Sequence[str] | None,
) -> dict[str, list[Any]]:
    """Run a pipeline whose named outputs are (key, value) PCollections; values in key order."""
    with tempfile.TemporaryDirectory(prefix="ratchet-beam-") as folder:
        with beam.Pipeline(options=_options(runner, options)) as pipeline:
            outputs = build(pipeline)
            for name, results in outputs.items():
                (Path(folder) / name).mkdir()
                _ = results | f"Save {name}" >> beam.Map(_save, f"{folder}/{name}")
        values: dict[str, list[Any]] = {}
        for name in outputs:
            values[name] = []
            for path in sorted((Path(folder) / name).glob("*.pkl")):
                with path.open("rb") as f:
                    values[name].append(pickle.load(f))
        return values


def _check_label(plan: _Plan, label: str | None) -> None:
    if label is not None and label not in plan.schema.names:
        names = ", ".join(plan.schema.names)
        raise NotFound(f"label column {label!r} is not in the data ({names})")


def compute_statistics(
    source: SourceLike,
    *,
    label: str | None = None,
    runner: str = DEFAULT_RUNNER,
    options: Sequence[str] | None = None,
    errors_path: Path | None = None,
    error_budget: float | int | None = None,
    **stats_options: Any,
) -> DatasetStatistics:
    """Statistics of a source, read and combined by Beam.

    Malformed rows go to one errors file per source file under the folder
    `errors_path` (default: a fresh folder under the system temp directory).
    """
    plan = _plan(source, errors_path, error_budget)
    _check_label(plan, label)
    combine = StatisticsCombineFn({"label": label, **stats_options})

    def build(pipeline: beam.Pipeline) -> dict[str, Any]:
        batches, quarantined = _read(pipeline, plan)
        statistics = (
            batches
            | "Values" >> beam.Values()
            | "Statistics" >> beam.CombineGlobally(combine)
            | "Key" >> beam.Map(lambda stats: ((0,), stats))
        )
        return {"statistics": statistics, QUARANTINED: quarantined}

    results = _run(build, runner, options)
    [statistics] = results["statistics"]
    _account(plan, results[QUARANTINED], good=statistics.rows)
    return statistics  # type: ignore[no-any-return]


def _split_rows(
    item: tuple[tuple[int, int], pa.RecordBatch],
    transform: Transform | None,
    *,
    key: str | Sequence[str] | None,
    ratios: Sequence[float],
) -> Iterator[tuple[tuple[int, ...], tuple[int, pa.Table]]]:
    """A batch's rows of each split (transformed), keyed by batch and split."""
    number, batch = item
    index = hash_split(batch, key=key, ratios=ratios)
    for position in range(len(ratios)):
        chosen = pa.Table.from_batches([batch.filter(pa.array(index == position))])
        rows = transform.apply(chosen) if transform is not None else chosen
        yield (*number, position), (position, rows)


def split_and_transform(
    source: SourceLike,
    transform: Transform | None = None,
    *,
    key: str | Sequence[str] | None = None,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    runner: str = DEFAULT_RUNNER,
    options: Sequence[str] | None = None,
    errors_path: Path | None = None,
) -> list[tuple[int, pa.Table]]:
    """Each batch's rows split by hash (and transformed), as (split index, rows), in order.

    Everything comes back to the driver: for tests and small data; `prepare_dataset`
    writes the splits from the workers instead.
    """
    split_ratios = check_ratios(ratios)
    plan = _plan(source, errors_path, None)

    def build(pipeline: beam.Pipeline) -> dict[str, Any]:
        batches, quarantined = _read(pipeline, plan)
        parts = batches | "Split" >> beam.FlatMap(
            _split_rows, transform, key=key, ratios=split_ratios
        )
        return {"parts": parts, QUARANTINED: quarantined}

    results = _run(build, runner, options)
    parts: list[tuple[int, pa.Table]] = results["parts"]
    _account(plan, results[QUARANTINED], good=sum(rows.num_rows for _, rows in parts))
    return parts


def _split_batches(
    item: tuple[tuple[int, int], pa.RecordBatch],
    *,
    key: str | Sequence[str] | None,
    ratios: Sequence[float],
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """A batch's rows of each split, by split index; empty ones too, as the local engine adds."""
    _, batch = item
    index = hash_split(batch, key=key, ratios=ratios)
    for position in range(len(ratios)):
        yield position, batch.filter(pa.array(index == position))


def _export_batch(
    item: tuple[tuple[int, int], pa.RecordBatch],
    transform: Transform,
    *,
    key: str | Sequence[str] | None,
    ratios: Sequence[float],
    folder: str,
    shard_rows: int,
) -> Iterator[tuple[tuple[int, ...], tuple[str, int, list[str]]]]:
    """Write one batch's transformed splits (and raw test rows) as shards of their own.

    The shard names carry the file and batch numbers, so rewriting a batch (a
    retried bundle) replaces its shards, and name order is reading order.
    """
    (number, position), batch = item
    index = hash_split(batch, key=key, ratios=ratios)
    prefix = f"part-{number:05d}-{position:05d}"
    for split, name in enumerate(SPLITS):
        chosen = batch.filter(pa.array(index == split))
        if not chosen.num_rows:
            continue
        outputs = [(name, transform.apply(chosen))]
        if name == "test":
            outputs.append(("raw_test", pa.Table.from_batches([chosen])))
        for target, table in outputs:
            writer = ShardWriter(Path(folder) / target, shard_rows=shard_rows, prefix=prefix)
            writer.write(table)
            paths = [str(path) for path in writer.close()]
            order = (number, position, split, int(target == "raw_test"))
            yield order, (target, table.num_rows, paths)


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
    runner: str = DEFAULT_RUNNER,
    options: Sequence[str] | None = None,
) -> PreparedDataset:
    """The local engine's `prepare_dataset` as two Beam pipelines: describe, then export.

    The first reads the source and combines statistics per split (all rows'
    statistics are their merge); the driver infers the schema and fits the
    transform on the training split; the second reads again, splits, transforms and
    writes the shards from the workers. The folder gets the local engine's layout
    (`train/`, `validation/`, `test/`, `raw_test/`, statistics, schema, transform),
    with a shard (of at most `shard_rows` rows) per batch read rather than rows
    regrouped across batches. Malformed rows go under `folder / "errors"`.
    """
    split_ratios = check_ratios(ratios)
    if len(split_ratios) != len(SPLITS):
        raise InvalidArgument(f"give {len(SPLITS)} ratios (train, validation, test)")
    if not isinstance(shard_rows, int) or shard_rows < 1:
        raise InvalidArgument(f"shard_rows must be at least 1, got {shard_rows}")
    plan = _plan(source, folder / "errors", error_budget)
    _check_label(plan, label)
    combine = StatisticsCombineFn({"label": label, "top_k": TOP_K}, finish=False)

    def describe(pipeline: beam.Pipeline) -> dict[str, Any]:
        batches, quarantined = _read(pipeline, plan)
        per_split = (
            batches
            | "Split" >> beam.FlatMap(_split_batches, key=key, ratios=split_ratios)
            | "Statistics" >> beam.CombinePerKey(combine)
            | "Key" >> beam.Map(lambda kv: ((kv[0],), kv))
        )
        return {"statistics": per_split, QUARANTINED: quarantined}

    described = _run(describe, runner, options)
    per_split = [StatsAccumulator.create(label=label, top_k=TOP_K) for _ in SPLITS]
    for position, accumulator in described["statistics"]:
        per_split[position] = accumulator
    everything = StatsAccumulator.create(label=label, top_k=TOP_K)
    for accumulator in per_split:
        everything.merge(accumulator)
    statistics, train_statistics = everything.finish(), per_split[0].finish()
    quarantine = _account(plan, described[QUARANTINED], good=statistics.rows)
    schema = infer_schema(statistics)
    transform = fit_transform(train_statistics, **dict(transform_options or {}))

    def export(pipeline: beam.Pipeline) -> dict[str, Any]:
        batches, _ = _read(pipeline, plan)
        written = batches | "Export" >> beam.FlatMap(
            _export_batch,
            transform,
            key=key,
            ratios=split_ratios,
            folder=str(folder),
            shard_rows=shard_rows,
        )
        return {"shards": written}

    shards: dict[str, list[Path]] = {name: [] for name in (*SPLITS, "raw_test")}
    rows = dict.fromkeys(SPLITS, 0)
    for target, count, paths in _run(export, runner, options)["shards"]:
        shards[target].extend(Path(p) for p in paths)
        if target in rows:
            rows[target] += count
    empty = plan.schema.empty_table()
    transform_schema = transform.apply(empty).schema
    for target, paths in shards.items():
        if not paths:  # an empty split still gets one shard with its schema, as locally
            writer = ShardWriter(folder / target, shard_rows=shard_rows)
            writer.set_schema(empty.schema if target == "raw_test" else transform_schema)
            paths.extend(writer.close())
        paths.sort()
    write_metadata(folder, statistics, train_statistics, schema, transform, rows)
    return PreparedDataset(
        folder,
        statistics,
        train_statistics,
        schema,
        transform,
        rows,
        {target: tuple(paths) for target, paths in shards.items()},
        quarantine,
    )
