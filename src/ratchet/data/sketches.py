"""Mergeable sketches for statistics: quantiles of numbers, distinct count of strings.

This module owns the approximate summaries `ratchet.data.stats` switches to when
a column outgrows its exact state: `QuantileSketch` (a KLL-style compactor with a
sampler in front) and `HyperLogLog`, plus the vectorized string hash the latter
needs. Every operation is vectorized with numpy and deterministic (the random
choices are seeded from the data sizes), so the same input in the same order
gives the same sketch. Exact statistics and their merge rules live in `stats`.

Error bounds (normalized rank error of a quantile, relative error of a count):

- `QuantileSketch`: items enter with weight 2**h, chosen so that a batch adds
  at most `capacity` items and the stream is sampled no thinner than one item
  in `count / capacity`; levels over `capacity` are halved (sorted, every
  other item from a random offset). With the default capacity 32,768 the rank
  error of a reported quantile has a standard deviation of about 0.3 % and
  stays under 1 % (the bound the tests check on 300,000 and 1,000,000 values).
- `HyperLogLog`: 2**14 registers, standard error 1.04 / 128 = 0.81 %; linear
  counting below 2.5 * 2**14 distinct values, where it is nearly exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Floats = npt.NDArray[np.float64]
Hashes = npt.NDArray[np.uint64]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng([abs(s) for s in seed])


@dataclass
class QuantileSketch:
    """Weighted sample of a stream of floats; level h holds items of weight 2**h."""

    capacity: int = 32_768
    count: int = 0
    levels: list[Floats] = field(default_factory=list)

    def add(self, values: Floats) -> None:
        """Add finite-or-infinite floats (no NaN) to the sketch."""
        n = len(values)
        if n == 0:
            return
        self.count += n
        by_batch = math.ceil(math.log2(n / self.capacity)) if n > self.capacity else 0
        by_stream = int(math.log2(max(1.0, self.count / self.capacity)))
        level = max(by_batch, by_stream)
        self._put(level, self._sample(values, 2**level))
        self._compact()

    def merge(self, other: QuantileSketch) -> None:
        self.count += other.count
        for level, items in enumerate(other.levels):
            self._put(level, items)
        self._compact()

    def weighted(self) -> tuple[Floats, Floats]:
        """The sorted items and their weights."""
        if not self.levels:
            return np.empty(0), np.empty(0)
        items = np.concatenate(self.levels)
        weights = np.concatenate([np.full(len(v), 2.0**h) for h, v in enumerate(self.levels)])
        order = np.argsort(items)
        return items[order], weights[order]

    def quantiles(self, qs: Floats) -> Floats:
        return weighted_quantiles(*self.weighted(), qs)

    def _sample(self, values: Floats, weight: int) -> Floats:
        """One random item per block of `weight` (the tail block with its fair chance)."""
        if weight == 1:
            return np.array(values, dtype=np.float64)
        rng = _rng(self.count, len(values), weight)
        blocks = len(values) // weight
        picks = np.arange(blocks) * weight + rng.integers(0, weight, blocks)
        tail = len(values) - blocks * weight
        if tail and rng.random() < tail / weight:
            picks = np.append(picks, blocks * weight + rng.integers(0, tail))
        return np.asarray(values[picks], dtype=np.float64)

    def _put(self, level: int, items: Floats) -> None:
        while len(self.levels) <= level:
            self.levels.append(np.empty(0))
        self.levels[level] = np.concatenate([self.levels[level], items])

    def _compact(self) -> None:
        level = 0
        while level < len(self.levels):
            items = self.levels[level]
            if len(items) > self.capacity:
                rng = _rng(self.count, level, len(items))
                items = np.sort(items)
                keep = np.empty(0)
                if len(items) % 2:
                    held = int(rng.integers(0, len(items)))
                    keep = items[held : held + 1]
                    items = np.delete(items, held)
                self.levels[level] = keep
                self._put(level + 1, items[int(rng.integers(0, 2)) :: 2])
            level += 1


def weighted_quantiles(items: Floats, weights: Floats, qs: Floats) -> Floats:
    """The sorted `items` whose cumulative weight first reaches each fraction in `qs`."""
    cumulative = np.cumsum(weights)
    index = np.searchsorted(cumulative, np.asarray(qs) * cumulative[-1], side="left")
    result: Floats = items[np.clip(index, 0, len(items) - 1)]
    return result


def _mix(h: Hashes) -> Hashes:
    """splitmix64's finalizer: spreads FNV's weak high bits over the whole word."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def hash_strings(values: pa.Array) -> Hashes:
    """64-bit hashes of the non-null strings in `values` (FNV-1a, then mixed).

    Loops over byte positions, never over strings: the cost is the total bytes.
    """
    values = values.drop_null().cast(pa.large_string())
    _, offset_buffer, buffer = values.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    starts, lengths = offsets[:-1], np.diff(offsets)
    data = np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else np.empty(0, np.uint8)
    hashes = np.full(len(starts), _FNV_OFFSET, dtype=np.uint64)
    active = np.arange(len(starts))
    position = 0
    with np.errstate(over="ignore"):
        while len(active):
            active = active[lengths[active] > position]
            byte = data[starts[active] + position].astype(np.uint64)
            hashes[active] = (hashes[active] ^ byte) * _FNV_PRIME
            position += 1
        hashes = (hashes ^ lengths.astype(np.uint64)) * _FNV_PRIME
    return _mix(hashes)


@dataclass
class HyperLogLog:
    """Distinct-count sketch with 2**precision one-byte registers."""

    precision: int = 14
    registers: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))

    def __post_init__(self) -> None:
        if len(self.registers) == 0:
            self.registers = np.zeros(2**self.precision, dtype=np.uint8)

    def add(self, hashes: Hashes) -> None:
        p = np.uint64(self.precision)
        index = (hashes >> (np.uint64(64) - p)).astype(np.intp)
        rest = (hashes << p) | (np.uint64(1) << (p - np.uint64(1)))
        rank = (65 - self._bit_length(rest)).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)

    def merge(self, other: HyperLogLog) -> None:
        np.maximum(self.registers, other.registers, out=self.registers)

    def estimate(self) -> float:
        m = float(len(self.registers))
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return m * math.log(m / zeros)
        return raw

    @staticmethod
    def _bit_length(words: Hashes) -> npt.NDArray[np.uint64]:
        for shift in (1, 2, 4, 8, 16, 32):
            words = words | (words >> np.uint64(shift))
        return np.bitwise_count(words).astype(np.uint64)
