"""The Beam engine: the same pure steps as an Apache Beam pipeline, for data past one machine.

Owns the Beam wiring only: statistics are a `CombineFn` around `StatsAccumulator`
(create, add, merge, finish), splits and transforms are `Map`s around
`hash_split` and `Transform.apply`. Nothing is computed differently from the
local engine, which is what the engine-equality tests check. `runner` and the
pipeline options pass through (DirectRunner by default: the Prism runner
downloads a binary on first use, which this machine cannot).

Results come back through files under a folder both the driver and the workers
can reach (a local folder on DirectRunner; a shared or fsspec path on a cluster).
"""

from __future__ import annotations

import pickle
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

from ratchet.data.io import open_source
from ratchet.data.split import DEFAULT_RATIOS, hash_split
from ratchet.data.stats import DatasetStatistics, StatsAccumulator
from ratchet.data.transform import Transform

DEFAULT_RUNNER = "DirectRunner"


class StatisticsCombineFn(beam.CombineFn):
    """`StatsAccumulator` as a Beam combiner: per-bundle partial states, merged, finished."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.options = dict(options)

    def create_accumulator(self) -> StatsAccumulator:
        return StatsAccumulator.create(**self.options)

    def add_input(self, accumulator: StatsAccumulator, batch: pa.RecordBatch) -> StatsAccumulator:
        return accumulator.add(batch)

    def merge_accumulators(self, accumulators: Iterable[StatsAccumulator]) -> StatsAccumulator:
        merged = StatsAccumulator.create(**self.options)
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: StatsAccumulator) -> DatasetStatistics:
        return accumulator.finish()


def _batches(source: object) -> list[pa.RecordBatch]:
    """The source's batches, read with ratchet's readers (quarantine included)."""
    return list(open_source(source).batches())


def _options(runner: str, options: Sequence[str] | None) -> PipelineOptions:
    return PipelineOptions([f"--runner={runner}", *(options or [])])


def _save(value: object, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(value, f)


def _run(build: Any, runner: str, options: Sequence[str] | None) -> list[Any]:
    """Run a pipeline whose last step writes pickles into a folder; return them in key order."""
    with tempfile.TemporaryDirectory(prefix="ratchet-beam-") as folder:
        with beam.Pipeline(options=_options(runner, options)) as pipeline:
            results = build(pipeline)
            _ = results | "Save" >> beam.Map(
                lambda item: _save(item[1], f"{folder}/{item[0]:012d}-{uuid.uuid4().hex}.pkl")
            )
        values = []
        for path in sorted(Path(folder).glob("*.pkl")):
            with path.open("rb") as f:
                values.append(pickle.load(f))
        return values


def compute_statistics(
    source: object,
    *,
    label: str | None = None,
    runner: str = DEFAULT_RUNNER,
    options: Sequence[str] | None = None,
    **stats_options: Any,
) -> DatasetStatistics:
    """Statistics of a source, combined by Beam."""
    batches = _batches(source)
    combine = StatisticsCombineFn({"label": label, **stats_options})

    def build(pipeline: beam.Pipeline) -> Any:
        return (
            pipeline
            | "Read" >> beam.Create(batches)
            | "Statistics" >> beam.CombineGlobally(combine)
            | "Key" >> beam.Map(lambda stats: (0, stats))
        )

    [statistics] = _run(build, runner, options)
    return statistics  # type: ignore[no-any-return]


def split_and_transform(
    source: object,
    transform: Transform | None = None,
    *,
    key: str | Sequence[str] | None = None,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    runner: str = DEFAULT_RUNNER,
    options: Sequence[str] | None = None,
) -> list[tuple[int, pa.Table]]:
    """Each batch's rows split by hash (and transformed), as (split index, rows), in order."""
    batches = list(enumerate(_batches(source)))

    def split(item: tuple[int, pa.RecordBatch]) -> list[tuple[int, tuple[int, pa.Table]]]:
        number, batch = item
        index = hash_split(batch, key=key, ratios=ratios)
        parts = []
        for position in range(len(ratios)):
            chosen = pa.Table.from_batches([batch.filter(pa.array(index == position))])
            rows = transform.apply(chosen) if transform is not None else chosen
            parts.append((number * len(ratios) + position, (position, rows)))
        return parts

    def build(pipeline: beam.Pipeline) -> Any:
        return pipeline | "Read" >> beam.Create(batches) | "Split" >> beam.FlatMap(split)

    return _run(build, runner, options)
