"""Which rows the feeder serves, in which order: a pure function of the seed and epoch.

Owns the epoch order (shard order, then row order within each shard, both
seeded by `(seed, epoch, ...)` so any process or machine computes the same
one), the partition of that global stream between consumers (rank, DataLoader
worker: position modulo the number of consumers, so shares are disjoint,
cover every row, and differ in size by at most one) and weighted sampling by
slice. It reads no data and keeps no clock; `feeder` does both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.errors import InvalidArgument, NotFound

Rows: TypeAlias = npt.NDArray[np.int64]
#: A slice is a boolean mask over a table: a (column, value) pair or a function of the table.
SliceRule: TypeAlias = tuple[str, Any] | Callable[[pa.Table], Any]


@dataclass(frozen=True)
class Partition:
    """This consumer's place among all consumers (ranks x DataLoader workers)."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise InvalidArgument(
                f"rank must be in [0, world_size), got rank {self.rank} of {self.world_size}"
            )


def shard_order(count: int, *, seed: int, epoch: int, shuffle: bool) -> Rows:
    if not shuffle:
        return np.arange(count, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(count).astype(np.int64)


def row_order(rows: int, *, seed: int, epoch: int, shard: int, shuffle: bool) -> Rows:
    if not shuffle:
        return np.arange(rows, dtype=np.int64)
    return np.random.default_rng([seed, epoch, shard]).permutation(rows).astype(np.int64)


def share(order: Rows, *, offset: int, partition: Partition) -> Rows:
    """The rows of `order` this consumer serves; `offset` is their place in the epoch stream."""
    if partition.world_size == 1:
        return order
    first = (partition.rank - offset) % partition.world_size
    return order[first :: partition.world_size]


def slice_masks(
    table: pa.Table, slices: Mapping[str, SliceRule]
) -> dict[str, npt.NDArray[np.bool_]]:
    """One mask per slice; a row in several slices belongs to the first that names it."""
    taken = np.zeros(table.num_rows, dtype=bool)
    masks = {}
    for name, rule in slices.items():
        if isinstance(rule, tuple):
            column, value = rule
            if column not in table.column_names:
                raise NotFound(f"slice {name!r}: the data has no column {column!r}")
            mask = pc.equal(table[column], pa.scalar(value)).fill_null(False)
        else:
            mask = rule(table)
        array = np.asarray(
            mask.to_numpy(zero_copy_only=False) if hasattr(mask, "to_numpy") else mask
        )
        if array.shape != (table.num_rows,) or array.dtype != bool:
            raise InvalidArgument(f"slice {name!r} must give one boolean per row")
        masks[name] = array & ~taken
        taken |= array
    for name, mask in masks.items():
        if not mask.any():
            raise InvalidArgument(f"slice {name!r} has no rows")
    return masks


class SliceSampler:
    """Draws rows slice by slice so the realized mix tracks the weights to within a row.

    Each slice's rows are served from a reshuffled cycle (every row of a slice once
    before any twice), and the count per slice carries its rounding remainder to the
    next draw, so over any run of draws each slice's share is its weight's share
    give or take one row.
    """

    def __init__(
        self, masks: Mapping[str, npt.NDArray[np.bool_]], *, seed: int | list[int]
    ) -> None:
        self._random = np.random.default_rng(seed)
        self._pools = {name: np.flatnonzero(mask).astype(np.int64) for name, mask in masks.items()}
        self._cycles = {name: self._random.permutation(rows) for name, rows in self._pools.items()}
        self._next = dict.fromkeys(self._pools, 0)
        self._owed = dict.fromkeys(self._pools, 0.0)

    def allocate(self, count: int, weights: Mapping[str, float]) -> dict[str, int]:
        total = sum(weights.get(name, 0.0) for name in self._pools)
        expected = {
            name: count * weights.get(name, 0.0) / total + self._owed[name] for name in self._pools
        }
        counts = {name: max(0, math.floor(value)) for name, value in expected.items()}
        short = count - sum(counts.values())
        by_remainder = sorted(
            (name for name in self._pools if weights.get(name, 0.0) > 0),
            key=lambda name: expected[name] - counts[name],
            reverse=True,
        )
        for name in by_remainder[: max(short, 0)]:
            counts[name] += 1
        for name in self._pools:
            self._owed[name] = expected[name] - counts[name]
        return counts

    def draw(self, count: int, weights: Mapping[str, float]) -> Rows:
        """`count` row indices, mixed across slices by `weights`, in random order."""
        picked = [self._take(name, n) for name, n in self.allocate(count, weights).items() if n]
        rows = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
        return rows[self._random.permutation(len(rows))]

    def _take(self, name: str, count: int) -> Rows:
        parts = []
        while count:
            cycle, start = self._cycles[name], self._next[name]
            if start == len(cycle):
                cycle = self._cycles[name] = self._random.permutation(self._pools[name])
                start = 0
            end = min(len(cycle), start + count)
            parts.append(cycle[start:end])
            count -= end - start
            self._next[name] = end
        return np.concatenate(parts)
