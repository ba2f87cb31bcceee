"""The feeder: a generator of batches over Parquet shards that training steers while it runs.

Owns `Feeder` (what to read, the seed, the live `FeederControl`, the policies,
and feedback: `feeder.feedback({...})` or `iterator.send({...})`) and the
options that shape it. Settings (`batch_size`, `weights`, `prefetch_depth`)
apply at the next batch; signals (`gradient_noise_scale`, `slice_loss`, ...)
go to the policies that declared them. Anything else, or a bad value, is
refused with `InvalidArgument` and changes nothing. The producer/consumer loop
is in `iterator`, row order in `plan`, copies and failover in `replicas`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.feeder.control import SETTINGS, Change, FeederControl
from ratchet.feeder.plan import Partition, SliceRule, slice_masks
from ratchet.feeder.policy import Policy
from ratchet.feeder.replicas import ReplicaBalancer
from ratchet.feeder.sources import ShardSource, find_shards

if TYPE_CHECKING:
    from ratchet.feeder.iterator import FeederIterator
    from ratchet.tracking.tracker import Run

Arrays = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class Sampling:
    """Weighted mode: named slices (or a column, one slice per value) and starting weights."""

    slices: Mapping[str, SliceRule] | str
    weights: Mapping[str, float] | None = None


@dataclass(frozen=True)
class FeederOptions:
    """How the feeder reads and hands out rows; the defaults suit one process on one machine."""

    shuffle: bool = True
    columns: tuple[str, ...] | None = None
    split: str = "train"  # the split read from a prepared dataset folder
    mirrors: tuple[str, ...] = ()  # roots holding copies of the same shards
    prefetch_depth: int = 4
    max_prefetch_depth: int = 256
    partition: Partition = field(default_factory=Partition)
    first_epoch: int = 0
    read_ahead: int = 2  # shard reads in flight ahead of the one being served
    skip_rows: int = 0  # of the first epoch's share: resume mid-epoch where a checkpoint left off
    drop_last: bool = False  # drop an epoch's last, short batch (uniform mode)
    output: str = "numpy"  # or "torch": tensors that share the arrays' memory
    timeout: float = 30.0  # seconds before a stalled copy of a shard is given up on
    log_every: int = 100  # batches between telemetry points in the tracking run


def table_arrays(table: pa.Table) -> Arrays:
    """Columns as numpy arrays; floating point as float32, the dtype models train in."""
    arrays = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        array = column.to_numpy()
        arrays[name] = array.astype(np.float32, copy=False) if array.dtype.kind == "f" else array
    return arrays


class Feeder:
    """Batches (dicts of arrays) from shards; iterate it, and steer it while iterating.

    Uniform mode (the default) serves every row of this consumer's share exactly once
    per epoch in a seeded order; weighted mode (`sampling=`) draws rows slice by slice
    to the current weights, `epoch` meaning as many rows as the share holds.
    """

    def __init__(
        self,
        source: ShardSource,
        *,
        batch_size: int = 256,
        seed: int = 0,
        epochs: int | None = 1,
        sampling: Sampling | None = None,
        policies: Sequence[Policy] = (),
        run: Run | None = None,
        options: FeederOptions | None = None,
    ) -> None:
        self.options = options or FeederOptions()
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise InvalidArgument(f"epochs must be a positive int or None, got {epochs!r}")
        if self.options.output not in ("numpy", "torch"):
            raise InvalidArgument(f"output must be 'numpy' or 'torch', got {self.options.output!r}")
        self.seed, self.epochs, self.run = seed, epochs, run
        self.balancer = ReplicaBalancer(timeout=self.options.timeout, seed=seed)
        found = find_shards(source, split=self.options.split, mirrors=self.options.mirrors)
        self.shards = self.balancer.with_row_counts(found)
        self.total_rows = sum(s.rows or 0 for s in self.shards)
        if self.total_rows == 0:
            raise InvalidArgument("the shards hold no rows")
        self.data: Arrays | None = None
        self.masks: dict[str, npt.NDArray[np.bool_]] = {}
        if sampling is not None:
            self._load_slices(sampling)
        self.control = FeederControl(
            batch_size=batch_size,
            prefetch_depth=self.options.prefetch_depth,
            max_prefetch_depth=self.options.max_prefetch_depth,
            slices=tuple(self.masks),
            weights=sampling.weights if sampling is not None else None,
        )
        self.policies = list(policies)
        self.signals = {name for policy in self.policies for name in policy.signals}
        self.history: list[Change] = []  # every applied change, for explaining the run
        self._lock = threading.Lock()
        self._signals_pending: dict[str, Any] = {}
        if run is not None:
            run.log_params({f"feeder.{k}": v for k, v in self.describe().items()})

    @property
    def weighted(self) -> bool:
        return self.data is not None

    @property
    def epoch_rows(self) -> int:
        """Rows this consumer serves per epoch: its share of the stream."""
        partition = self.options.partition
        return len(range(partition.rank, self.total_rows, partition.world_size))

    def describe(self) -> dict[str, object]:
        return {
            "shards": len(self.shards),
            "rows": self.total_rows,
            "batch_size": self.control.batch_size,
            "seed": self.seed,
            "mode": "weighted" if self.weighted else "uniform",
            "rank": self.options.partition.rank,
            "world_size": self.options.partition.world_size,
        }

    def __iter__(self) -> FeederIterator:
        from ratchet.feeder.iterator import FeederIterator

        if self.balancer.closed:
            raise FailedPrecondition("this feeder is closed; make a new one to read again")
        return FeederIterator(self)

    def feedback(self, feedback: Mapping[str, Any]) -> list[Change]:
        """Apply settings now and queue signals for the policies; all or nothing."""
        if not isinstance(feedback, Mapping):
            raise InvalidArgument(f"feedback must be a mapping, got {type(feedback).__name__}")
        settings = {k: v for k, v in feedback.items() if k in SETTINGS}
        signals = {k: v for k, v in feedback.items() if k not in SETTINGS}
        for name, value in signals.items():
            if name not in self.signals:
                known = ", ".join((*SETTINGS, *sorted(self.signals)))
                raise InvalidArgument(f"unknown feedback {name!r}; this feeder takes {known}")
            self._check_signal(name, value)
        changes = self.control.update("feedback", **settings)
        with self._lock:
            self._signals_pending.update(signals)
        return changes

    def take_signals(self) -> dict[str, Any]:
        with self._lock:
            signals, self._signals_pending = self._signals_pending, {}
            return signals

    def read_shard(self, index: int) -> Arrays:
        return table_arrays(self.balancer.read(self.shards[index], self.options.columns))

    def close(self) -> None:
        self.balancer.close()

    def _check_signal(self, name: str, value: object) -> None:
        values = value.values() if isinstance(value, Mapping) else [value]
        for number in values:
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise InvalidArgument(f"feedback {name!r} must hold numbers, got {value!r}")
            if not math.isfinite(number):
                raise InvalidArgument(f"feedback {name!r} must be finite, got {value!r}")
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(self.masks))
            if unknown:
                raise InvalidArgument(f"feedback {name!r} names unknown slice {unknown[0]!r}")

    def _load_slices(self, sampling: Sampling) -> None:
        """Weighted mode draws from any row at any time, so it holds the data in memory."""
        tables = [self.balancer.read(s, None) for s in self.shards]
        table = pa.concat_tables(tables)
        slices = sampling.slices
        if isinstance(slices, str):
            column = slices
            if column not in table.column_names:
                raise InvalidArgument(f"cannot slice by {column!r}: the data has no such column")
            values = pc.unique(table[column]).drop_null().to_pylist()
            slices = {str(value): (column, value) for value in sorted(values)}
        if not slices:
            raise InvalidArgument("weighted sampling needs at least one slice")
        self.masks = slice_masks(table, slices)
        columns = self.options.columns
        self.data = table_arrays(table.select(list(columns)) if columns else table)
