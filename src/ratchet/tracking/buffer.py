"""`MetricBuffer`: batches time-series points and summary metrics into few, large writes.

Owns the buffering rule: a point costs a list append; the buffer is written
when it holds `max_points`, every `interval` seconds from a background thread,
on `flush()` (the tracker calls it at the end of a run) and at interpreter exit.
A failed background write keeps its points for the next try, so nothing is lost.
What a point means, and who may log it, is `tracker`'s business.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Sequence

from ratchet.metadata import Kind, MetadataStore
from ratchet.metadata.series import SeriesBlock, TimePoint, blocks_from_points

logger = logging.getLogger(__name__)

#: Called with the blocks just written, e.g. to mirror them into TensorBoard event files.
BlockListener = Callable[[Sequence[SeriesBlock]], None]


class MetricBuffer:
    """Thread-safe buffer in front of `MetadataStore.write_time_series` and run summaries."""

    def __init__(
        self,
        store: MetadataStore,
        *,
        max_points: int = 50_000,
        interval: float = 2.0,
        listener: BlockListener | None = None,
    ) -> None:
        self._store = store
        self._max_points = max_points
        self._listener = listener
        self._points: list[TimePoint] = []
        self._blocks: list[SeriesBlock] = []
        self._block_points = 0
        self._summaries: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()
        # Serialises writes, so a size-triggered flush and the timer never race each other.
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._flush_periodically, args=(interval,), name="ratchet-metrics", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def add_points(self, points: Sequence[TimePoint]) -> None:
        with self._lock:
            self._points.extend(points)
            full = len(self._points) + self._block_points >= self._max_points
        if full:
            self.flush()

    def add_blocks(self, blocks: Sequence[SeriesBlock]) -> None:
        """Buffer whole blocks, as batched logging produces them."""
        with self._lock:
            self._blocks.extend(blocks)
            self._block_points += sum(len(b) for b in blocks)
            full = len(self._points) + self._block_points >= self._max_points
        if full:
            self.flush()

    def add_point(self, point: TimePoint) -> None:
        # The hot path of logging inside a training loop: one append under a lock.
        with self._lock:
            self._points.append(point)
            full = len(self._points) + self._block_points >= self._max_points
        if full:
            self.flush()

    def set_summaries(self, context_id: int, metrics: dict[str, float]) -> None:
        with self._lock:
            self._summaries.setdefault(context_id, {}).update(metrics)

    def pending(self) -> int:
        """Points and summaries not yet written, counting a flush in progress as not written."""
        with self._flush_lock, self._lock:
            summaries = sum(len(m) for m in self._summaries.values())
            return len(self._points) + self._block_points + summaries

    def flush(self) -> None:
        """Write everything buffered; on failure the points stay buffered and the error rises."""
        with self._flush_lock:
            with self._lock:
                blocks = self._blocks + blocks_from_points(self._points)
                self._points, self._blocks, self._block_points = [], [], 0
                summaries, self._summaries = self._summaries, {}
            try:
                if blocks:
                    self._store.write_time_series(blocks)
                for context_id, metrics in summaries.items():
                    self._store.set_properties(
                        Kind.CONTEXT,
                        context_id,
                        custom_properties={f"metric.{k}": v for k, v in metrics.items()},
                    )
            except BaseException:
                self._restore(blocks, summaries)
                raise
            if blocks and self._listener is not None:
                self._listener(blocks)

    def _restore(self, blocks: list[SeriesBlock], summaries: dict[int, dict[str, float]]) -> None:
        with self._lock:
            self._blocks[:0] = blocks
            self._block_points += sum(len(b) for b in blocks)
            for context_id, metrics in summaries.items():
                # Values logged since the failed flush are newer: they win.
                merged = {**metrics, **self._summaries.get(context_id, {})}
                self._summaries[context_id] = merged

    def _flush_periodically(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.flush()
            except Exception as e:  # the points stay buffered; the next flush retries
                logger.warning("background metric flush failed, will retry: %s", e)

    def close(self) -> None:
        """Stop the timer and write what is left; safe to call more than once."""
        if self._closed.is_set():
            return
        self._closed.set()
        atexit.unregister(self.close)
        self._thread.join()
        self.flush()
