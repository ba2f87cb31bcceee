"""Feedback policies: small objects that turn what the feeder and the trainer see into settings.

Owns the `Policy` interface (a `signals` tuple naming the trainer feedback it
reads, and a call from an `Observation` to the settings it wants) and the
built-in policies: scheduled, throughput-driven and gradient-noise-driven batch
sizes, loss-weighted slices and adaptive prefetch depth. Policies only
propose; `FeederControl` validates and records, `feeder` applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ratchet.errors import InvalidArgument


@dataclass(frozen=True)
class Observation:
    """What a policy sees after each batch: the feeder's measurements and new trainer feedback."""

    step: int  # batches served so far
    batch_size: int
    prefetch_depth: int
    max_prefetch_depth: int
    weights: Mapping[str, float]
    rows_per_second: float  # served, over the last window
    wait_seconds: float  # this batch's wait on the queue
    interval_seconds: float  # since the previous batch was handed out, the wait included
    producer_seconds: float  # per block, moving average
    consumer_seconds: float  # per batch between requests, moving average
    block_bytes: int
    feedback: Mapping[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    signals: tuple[str, ...]

    def __call__(self, seen: Observation) -> dict[str, Any]: ...


@dataclass
class ScheduledBatchSize:
    """A batch size by step: `{0: 64, 1000: 256}` (the last key at or before the step wins)."""

    schedule: Mapping[int, int] | Callable[[int], int]
    signals: tuple[str, ...] = ()

    def __call__(self, seen: Observation) -> dict[str, Any]:
        if callable(self.schedule):
            return {"batch_size": self.schedule(seen.step)}
        due = [start for start in self.schedule if start <= seen.step]
        return {"batch_size": self.schedule[max(due)]} if due else {}


@dataclass
class NoiseScaleBatchSize:
    """Grow the batch toward the gradient noise scale the trainer reports (McCandlish et al.).

    The noise scale B = tr(Σ) / |G|² is the batch size past which a bigger batch stops
    buying progress per example; while it exceeds the current batch by `factor`, the
    gradient is clean enough that a `factor`-times larger batch costs no extra steps.
    The batch never shrinks (that would undo the learning-rate schedule's assumptions).
    """

    minimum: int = 32
    maximum: int = 8192
    factor: int = 2
    signals: tuple[str, ...] = ("gradient_noise_scale",)

    def __call__(self, seen: Observation) -> dict[str, Any]:
        scale = seen.feedback.get("gradient_noise_scale")
        if scale is None or scale < seen.batch_size * self.factor:
            return {}
        grown = min(self.maximum, max(self.minimum, seen.batch_size * self.factor))
        return {"batch_size": grown} if grown != seen.batch_size else {}


def gradient_noise_scale(
    small_norm_sq: float, large_norm_sq: float, *, small_batch: int, large_batch: int
) -> float:
    """The simple noise scale from squared gradient norms at two batch sizes (unbiased form).

    |G|² ≈ (B_big |G_big|² - B_small |G_small|²) / (B_big - B_small) and
    tr(Σ) ≈ (|G_small|² - |G_big|²) / (1/B_small - 1/B_big); with data-parallel
    training, the per-rank and the all-reduced gradient give the two sizes for free.
    """
    if not 0 < small_batch < large_batch:
        raise InvalidArgument("need 0 < small_batch < large_batch")
    signal = (large_batch * large_norm_sq - small_batch * small_norm_sq) / (
        large_batch - small_batch
    )
    noise = (small_norm_sq - large_norm_sq) / (1 / small_batch - 1 / large_batch)
    return float("inf") if signal <= 0 else max(noise, 0.0) / signal


@dataclass
class ThroughputBatchSize:
    """Double the batch while served rows/s keeps rising by `gain`; step back when it falls.

    Judged over `window` batches at each size; stops growing once the process's
    resident memory passes `memory_limit_mb` (when the trainer reports `memory_mb`).
    """

    minimum: int = 32
    maximum: int = 8192
    gain: float = 1.05
    window: int = 20
    memory_limit_mb: float | None = None
    signals: tuple[str, ...] = ("memory_mb",)
    _since: int = 0
    _best: tuple[int, float] | None = None
    _settled: bool = False
    _memory_mb: float = 0.0

    def __call__(self, seen: Observation) -> dict[str, Any]:
        self._memory_mb = float(seen.feedback.get("memory_mb", self._memory_mb))
        self._since += 1
        if self._settled or self._since < self.window:
            return {}
        self._since = 0
        rate = seen.rows_per_second
        if self._best is not None and rate < self._best[1] * self.gain:
            self._settled = True
            return {"batch_size": self._best[0]} if rate < self._best[1] else {}
        self._best = (seen.batch_size, rate)
        over_memory = self.memory_limit_mb is not None and self._memory_mb > self.memory_limit_mb
        grown = min(self.maximum, seen.batch_size * 2)
        if over_memory or grown == seen.batch_size:
            self._settled = True
            return {}
        return {"batch_size": max(self.minimum, grown)}


@dataclass
class LossWeightedSlices:
    """Weight each slice by its validation loss to the power `1 / temperature`, floored.

    The trainer sends `{"slice_loss": {"a": 0.4, "b": 0.9}}`; slices it does not name
    keep their weight. `floor` keeps every slice in the mix, so a slice that got
    better is still seen and its loss still measured.
    """

    temperature: float = 1.0
    floor: float = 0.05
    signals: tuple[str, ...] = ("slice_loss",)

    def __call__(self, seen: Observation) -> dict[str, Any]:
        losses = seen.feedback.get("slice_loss")
        if not losses:
            return {}
        raw = {
            name: max(float(loss), 0.0) ** (1 / self.temperature) for name, loss in losses.items()
        }
        total = sum(raw.values()) or 1.0
        # The named slices share out the weight they hold now; the others keep theirs.
        mass = sum(seen.weights[name] for name in raw)
        return {"weights": {name: max(self.floor, v / total) * mass for name, v in raw.items()}}


@dataclass
class AdaptivePrefetch:
    """Deepen the queue while the consumer waits; make it shallower when it never does.

    Over each `window` of batches: if the consumer spent more than `target_wait` of
    its time waiting, the depth doubles (up to `max_depth` and what fits in
    `memory_limit_mb` of prefetched blocks); after `patience` windows without any wait
    it drops by one, giving back memory the source no longer needs.
    """

    min_depth: int = 1
    max_depth: int = 64
    target_wait: float = 0.02
    window: int = 20
    patience: int = 10
    memory_limit_mb: float = 1024.0
    signals: tuple[str, ...] = ()
    _since: int = 0
    _quiet: int = 0
    _waited: float = 0.0
    _elapsed: float = 0.0

    def __call__(self, seen: Observation) -> dict[str, Any]:
        self._waited += seen.wait_seconds
        self._elapsed += seen.interval_seconds
        self._since += 1
        if self._since < self.window:
            return {}
        waited = self._waited / self._elapsed if self._elapsed > 0 else 0.0
        self._since, self._waited, self._elapsed = 0, 0.0, 0.0
        fits = max(1, int(self.memory_limit_mb * 2**20 // max(seen.block_bytes, 1)))
        ceiling = min(max(self.min_depth, min(self.max_depth, fits)), seen.max_prefetch_depth)
        if waited > self.target_wait:
            self._quiet = 0
            return {"prefetch_depth": min(ceiling, seen.prefetch_depth * 2)}
        self._quiet = self._quiet + 1 if waited == 0 else 0
        if self._quiet >= self.patience and seen.prefetch_depth > self.min_depth:
            self._quiet = 0
            return {"prefetch_depth": seen.prefetch_depth - 1}
        return {"prefetch_depth": min(seen.prefetch_depth, ceiling)}
