"""One pass of a feeder: a producer thread filling a bounded queue, and the consumer steering it.

Owns `FeederIterator`, a real generator (`next`, `send`, `close`): the producer
reads shards in plan order (one shard read ahead) and cuts blocks at the batch
size current when it cuts them; the consumer assembles each batch at the batch
size current when it is asked for, re-cutting queued blocks if the size
changed, so a change applies at the very next batch and no row is lost or
served twice. After every batch it runs the policies, applies what they
propose, and records changes and telemetry in the tracking run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from ratchet.errors import InvalidArgument
from ratchet.feeder.feeder import Arrays, Feeder
from ratchet.feeder.plan import SliceSampler, row_order, shard_order, share
from ratchet.feeder.policy import Observation
from ratchet.feeder.queue import Closed, PrefetchQueue

Batch = dict[str, Any]
#: Weight of the newest sample in the producer's and consumer's moving averages.
SMOOTHING = 0.1


@dataclass(frozen=True)
class _Block:
    epoch: int
    version: int  # the weights' version it was drawn with (weighted mode)
    columns: Arrays
    rows: int

    def split(self, rows: int) -> tuple[_Block, _Block]:
        head = {k: v[:rows] for k, v in self.columns.items()}
        tail = {k: v[rows:] for k, v in self.columns.items()}
        return (
            _Block(self.epoch, self.version, head, rows),
            _Block(self.epoch, self.version, tail, self.rows - rows),
        )


class FeederIterator(Generator[Batch, Mapping[str, Any] | None, None]):
    def __init__(self, feeder: Feeder) -> None:
        self.feeder = feeder
        self.queue: PrefetchQueue[_Block | None] = PrefetchQueue(feeder.control.prefetch_depth)
        self.step = 0
        self.rows_served = 0
        self.waited = 0.0  # seconds the consumer spent waiting, in all
        self._pending: _Block | None = None
        self._finished = False
        self._handed_out = time.perf_counter()
        self._producer_seconds = 0.0
        self._consumer_seconds = 0.0
        self._block_bytes = 0
        self._window = (self._handed_out, 0, 0.0)  # start, rows, waited since the last log
        self._thread = threading.Thread(target=self._produce, name="ratchet-feeder", daemon=True)
        self._thread.start()

    # -- the generator protocol -------------------------------------------------------

    def send(self, value: Mapping[str, Any] | None) -> Batch:
        if value is not None:
            self.feeder.feedback(value)
        batch = self._next_batch()
        if batch is None:
            self.close()
            raise StopIteration
        return batch

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> Batch:
        self.close()
        raise typ if isinstance(typ, BaseException) else typ()

    def close(self) -> None:
        self._finished = True
        self.queue.close()
        self._record_changes()
        if self.feeder.run is not None:
            self._log_telemetry()

    def __iter__(self) -> FeederIterator:
        return self

    # -- consumer ---------------------------------------------------------------------

    def _next_batch(self) -> Batch | None:
        if self._finished:
            return None
        wanted = self.feeder.control.batch_size
        if self.feeder.weighted:
            wanted = min(wanted, self._weighted_rows_left())
        parts: list[_Block] = []
        have, waited = 0, 0.0
        while have < wanted:
            block = self._pending
            self._pending = None
            if block is None:
                block, wait = self.queue.get()
                waited += wait
            if block is None:
                self._finished = True
                break
            if parts and block.epoch != parts[0].epoch:
                self._pending = block  # a batch never spans two epochs
                break
            if (
                self.feeder.weighted
                and block.version < self.feeder.control.weights_with_version()[1]
            ):
                continue  # drawn with weights that have since changed
            if block.rows > wanted - have:
                block, self._pending = block.split(wanted - have)
            parts.append(block)
            have += block.rows
        short = have < wanted and self.feeder.options.drop_last and not self.feeder.weighted
        if not parts or short:
            return None if self._finished or not parts else self._next_batch()
        batch = _join(parts)
        self._after_batch(have, waited)
        return self._output(batch)

    def _weighted_rows_left(self) -> int:
        epochs = self.feeder.epochs
        if epochs is None:
            return self.feeder.control.batch_size
        left = epochs * self.feeder.epoch_rows - self.rows_served
        if left <= 0:
            self._finished = True
        return max(left, 0)

    def _output(self, batch: Arrays) -> Batch:
        if self.feeder.options.output == "torch":
            import torch

            # Text columns have no tensor type; they stay numpy arrays of str.
            return {
                k: torch.from_numpy(np.ascontiguousarray(v)) if v.dtype.kind in "biuf" else v
                for k, v in batch.items()
            }
        return dict(batch)

    def _after_batch(self, rows: int, waited: float) -> None:
        now = time.perf_counter()
        interval, self._handed_out = now - self._handed_out, now
        self.step += 1
        self.rows_served += rows
        self.waited += waited
        self._consumer_seconds += SMOOTHING * (interval - self._consumer_seconds)
        start, window_rows, window_wait = self._window
        self._window = (start, window_rows + rows, window_wait + waited)
        control = self.feeder.control
        seen = Observation(
            step=self.step,
            batch_size=control.batch_size,
            prefetch_depth=control.prefetch_depth,
            max_prefetch_depth=control.max_prefetch_depth,
            weights=control.weights,
            rows_per_second=(window_rows + rows) / max(now - start, 1e-9),
            wait_seconds=waited,
            interval_seconds=interval,
            producer_seconds=self._producer_seconds,
            consumer_seconds=self._consumer_seconds,
            block_bytes=self._block_bytes,
            feedback=self.feeder.take_signals(),
        )
        for policy in self.feeder.policies:
            proposed = policy(seen)
            if proposed:
                try:
                    control.update(type(policy).__name__, **proposed)
                except InvalidArgument as e:
                    raise InvalidArgument(f"policy {type(policy).__name__}: {e}") from e
        if self.queue.capacity != control.prefetch_depth:
            self.queue.resize(control.prefetch_depth)
        self._record_changes()
        if self.feeder.run is not None and self.step % self.feeder.options.log_every == 0:
            self._log_telemetry()

    # -- recording --------------------------------------------------------------------

    def _record_changes(self) -> None:
        changes = self.feeder.control.drain_changes()
        self.feeder.history.extend(changes)
        run = self.feeder.run
        if run is None:
            return
        for change in changes:
            values = (
                {f"feeder/weight/{k}": v for k, v in change.value.items()}
                if change.setting == "weights"
                else {f"feeder/{change.setting}": change.value}
            )
            run.log_time_series_metrics(values, step=self.step, wall_time=change.time)

    def _log_telemetry(self) -> None:
        assert self.feeder.run is not None
        start, rows, waited = self._window
        now = time.perf_counter()
        elapsed = max(now - start, 1e-9)
        metrics: dict[str, float] = {
            "feeder/rows_per_second": rows / elapsed,
            "feeder/wait_fraction": waited / elapsed,
            "feeder/queue_length": len(self.queue),
            "feeder/prefetch_depth": self.feeder.control.prefetch_depth,
            "feeder/failovers": self.feeder.balancer.failovers,
        }
        for number, (_, reads) in enumerate(sorted(self.feeder.balancer.reads.items())):
            metrics[f"feeder/replica_reads/{number}"] = reads
        self.feeder.run.log_time_series_metrics(metrics, step=self.step)
        self._window = (now, 0, 0.0)

    # -- producer ---------------------------------------------------------------------

    def _produce(self) -> None:
        try:
            blocks = self._weighted_blocks() if self.feeder.weighted else self._uniform_blocks()
            started = time.perf_counter()
            for block in blocks:
                spent = time.perf_counter() - started
                self._producer_seconds += SMOOTHING * (spent - self._producer_seconds)
                self._block_bytes = sum(a.nbytes for a in block.columns.values())
                self.queue.put(block)
                started = time.perf_counter()
            self.queue.put(None)
        except Closed:
            return
        except BaseException as e:  # the consumer raises it: a failed read is the loop's error
            self.queue.fail(e)

    def _epochs(self) -> Iterator[int]:
        first = self.feeder.options.first_epoch
        epoch = first
        while self.feeder.epochs is None or epoch < first + self.feeder.epochs:
            yield epoch
            epoch += 1

    def _uniform_blocks(self) -> Iterator[_Block]:
        feeder, options = self.feeder, self.feeder.options
        reads = max(1, options.read_ahead)
        with ThreadPoolExecutor(reads, thread_name_prefix="ratchet-read-ahead") as reader:
            for epoch in self._epochs():
                order = [
                    int(i)
                    for i in shard_order(
                        len(feeder.shards), seed=feeder.seed, epoch=epoch, shuffle=options.shuffle
                    )
                ]
                # Up to `read_ahead` shard reads in flight, consumed in plan order.
                ahead: deque[Future[Arrays]] = deque(
                    reader.submit(feeder.read_shard, i) for i in order[:reads]
                )
                offset = 0
                skip = options.skip_rows if epoch == options.first_epoch else 0
                for position, index in enumerate(order):
                    arrays = ahead.popleft().result()
                    if position + reads < len(order):
                        ahead.append(reader.submit(feeder.read_shard, order[position + reads]))
                    rows = feeder.shards[index].rows or 0
                    mine = share(
                        row_order(
                            rows,
                            seed=feeder.seed,
                            epoch=epoch,
                            shard=index,
                            shuffle=options.shuffle,
                        ),
                        offset=offset,
                        partition=options.partition,
                    )
                    offset += rows
                    mine, skip = mine[skip:], max(0, skip - len(mine))
                    picked = {k: v[mine] for k, v in arrays.items()}
                    yield from self._cut(epoch, 0, picked, len(mine))

    def _weighted_blocks(self) -> Iterator[_Block]:
        feeder = self.feeder
        assert feeder.data is not None
        sampler = SliceSampler(
            feeder.masks,
            seed=[feeder.seed, feeder.options.partition.rank, feeder.options.first_epoch],
        )
        while True:
            weights, version = feeder.control.weights_with_version()
            size = feeder.control.batch_size
            rows = sampler.draw(size, weights)
            yield _Block(0, version, {k: v[rows] for k, v in feeder.data.items()}, size)

    def _cut(self, epoch: int, version: int, arrays: Arrays, rows: int) -> Iterator[_Block]:
        start = 0
        while start < rows:
            size = self.feeder.control.batch_size
            block = {k: v[start : start + size] for k, v in arrays.items()}
            yield _Block(epoch, version, block, min(size, rows - start))
            start += size


def _join(parts: list[_Block]) -> Arrays:
    if len(parts) == 1:
        return parts[0].columns
    return {k: np.concatenate([p.columns[k] for p in parts]) for k in parts[0].columns}
