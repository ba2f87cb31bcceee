"""Shards with mirrored copies, and the balancer that picks which copy to read.

Owns `Shard` (one Parquet file's name, its row count and every URL holding a
copy of it: local folders or any `fsspec` URL) and `ReplicaBalancer`, which
sends each read to the copy expected to answer first (the fastest seconds per
row seen so far at that location, times its reads in flight) and fails over
to the next copy when a read errors, returns the wrong number of rows, or
stalls past the timeout. A shard is always read whole from one copy, so
failing over can neither lose nor duplicate a row. A location that failed is
avoided for a cooldown, which only a read begun after the failure can end. It
does not decide the order rows are fed in (`plan`).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ratchet.errors import InvalidArgument, StoreError

T = TypeVar("T")
#: Weight of the newest read in a location's moving average of seconds per row.
SMOOTHING = 0.3


@dataclass(frozen=True)
class Shard:
    """One shard: a name for messages and the URLs of its identical copies, best first."""

    name: str
    replicas: tuple[str, ...]
    rows: int | None = None

    def __post_init__(self) -> None:
        if not self.replicas:
            raise InvalidArgument(f"shard {self.name!r} has no replica")


def location(url: str) -> str:
    """The mirror a copy lives on: its folder (copies in one folder share a disk or server)."""
    return url.rstrip("/").rsplit("/", 1)[0] if "/" in url else "."


def read_parquet(url: str, columns: Sequence[str] | None = None) -> pa.Table:
    if "://" in url and not url.startswith("file://"):
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            return pq.read_table(f, columns=None if columns is None else list(columns))
    return pq.read_table(
        url.removeprefix("file://"), columns=None if columns is None else list(columns)
    )


def read_row_count(url: str) -> int:
    if "://" in url and not url.startswith("file://"):
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            return int(pq.ParquetFile(f).metadata.num_rows)
    return int(pq.ParquetFile(url.removeprefix("file://")).metadata.num_rows)


def _within(timeout: float, read: Callable[..., T], *args: Any) -> T:
    """`read(*args)` on a thread of its own, given up on after `timeout` seconds.

    A thread per read, not a pool: a stalled copy then holds only its own thread,
    and never starves the reads of healthy copies queued behind it. Daemon threads
    so a read that never returns does not keep the process alive.
    """
    result: Future[T] = Future()

    def run() -> None:
        try:
            result.set_result(read(*args))
        except BaseException as e:  # handed to the waiting reader, which decides
            result.set_exception(e)

    threading.Thread(target=run, name="ratchet-replica-read", daemon=True).start()
    return result.result(timeout)


@dataclass
class _Location:
    seconds_per_row: float | None = None
    in_flight: int = 0
    down_until: float = 0.0
    failures: int = 0  # so a read can tell whether the location failed while it ran


@dataclass
class ReplicaBalancer:
    """Chooses a copy per read, learns each location's speed, and fails over.

    `explore` is the chance a read goes to a random healthy copy instead of the
    best one, so a location that was slow (or down, after `cooldown` seconds)
    is measured again and can win back its share.
    """

    timeout: float = 30.0
    cooldown: float = 30.0
    explore: float = 0.05
    threads: int = 4
    seed: int = 0
    reads: Counter[str] = field(default_factory=Counter)  # successful reads per location
    failovers: int = 0

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise InvalidArgument(f"timeout must be positive, got {self.timeout}")
        self._lock = threading.Lock()
        self._locations: dict[str, _Location] = {}
        self._random = random.Random(self.seed)
        self.closed = False

    def read(self, shard: Shard, columns: Sequence[str] | None = None) -> pa.Table:
        """The shard's rows from the first copy that answers correctly in time."""
        errors = []
        for url in self._ranked(shard.replicas):
            where = location(url)
            with self._lock:
                self._locations[where].in_flight += 1
                failures = self._locations[where].failures
            started = time.perf_counter()
            try:
                table = _within(self.timeout, read_parquet, url, columns)
                if shard.rows is not None and table.num_rows != shard.rows:
                    raise ValueError(f"{table.num_rows} rows where {shard.rows} were expected")
            except FutureTimeout:
                errors.append(f"{url}: no answer within {self.timeout:g} s")
                self._mark_down(where)
            except Exception as e:  # any failure of one copy means: try the next one
                errors.append(f"{url}: {type(e).__name__}: {e}")
                self._mark_down(where)
            else:
                seconds = time.perf_counter() - started
                self._learn(where, seconds, max(table.num_rows, 1), since=failures)
                return table
            finally:
                with self._lock:
                    self._locations[where].in_flight -= 1
        raise StoreError(f"shard {shard.name} has no healthy replica: {'; '.join(errors)}")

    def with_row_counts(self, shards: Sequence[Shard]) -> list[Shard]:
        """`shards` with their row counts filled in from the footers, read concurrently."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="ratchet-footer") as pool:
            counts = pool.map(lambda s: s.rows if s.rows is not None else self.row_count(s), shards)
            return [
                dataclasses.replace(shard, rows=rows)
                for shard, rows in zip(shards, counts, strict=True)
            ]

    def row_count(self, shard: Shard) -> int:
        """The shard's row count from its Parquet footer, from the first copy that has one."""
        errors = []
        for url in self._ranked(shard.replicas):
            where = location(url)
            with self._lock:
                failures = self._locations[where].failures
            started = time.perf_counter()
            try:
                rows = _within(self.timeout, read_row_count, url)
                # A footer read is a small read: it still ranks the copies by latency.
                seconds = time.perf_counter() - started
                self._learn(where, seconds, max(rows, 1), since=failures, count=False)
                return rows
            except FutureTimeout:
                errors.append(f"{url}: no answer within {self.timeout:g} s")
            except Exception as e:  # a missing or corrupt copy: ask the next one
                errors.append(f"{url}: {type(e).__name__}: {e}")
            self._mark_down(where)
        raise StoreError(f"shard {shard.name} has no healthy replica: {'; '.join(errors)}")

    def close(self) -> None:
        self.closed = True

    def _ranked(self, urls: Sequence[str]) -> list[str]:
        """Healthy copies cheapest first (unmeasured ones count as free), then the down ones."""
        now = time.monotonic()
        with self._lock:
            for url in urls:
                self._locations.setdefault(location(url), _Location())

            def cost(url: str) -> float:
                state = self._locations[location(url)]
                return (state.seconds_per_row or 0.0) * (1 + state.in_flight)

            healthy = sorted(
                (u for u in urls if self._locations[location(u)].down_until <= now), key=cost
            )
            down = [u for u in urls if u not in healthy]
            if len(healthy) > 1 and self._random.random() < self.explore:
                healthy.insert(0, healthy.pop(self._random.randrange(1, len(healthy))))
        return healthy + down

    def _learn(
        self, where: str, seconds: float, rows: int, *, since: int, count: bool = True
    ) -> None:
        """Record a successful read at `where`, begun when it had failed `since` times."""
        with self._lock:
            state = self._locations[where]
            rate = seconds / rows
            previous = state.seconds_per_row
            state.seconds_per_row = (
                rate if previous is None else SMOOTHING * rate + (1 - SMOOTHING) * previous
            )
            # Only a read begun after the latest failure vouches for the location now. A
            # read already in flight when a copy there proved bad (read ahead) would
            # otherwise end the cooldown at once, and the next shards would be read from
            # the location that just served a bad copy.
            if state.failures == since:
                state.down_until = 0.0
            if count:
                self.reads[where] += 1

    def _mark_down(self, where: str) -> None:
        with self._lock:
            self._locations[where].down_until = time.monotonic() + self.cooldown
            self._locations[where].failures += 1
            self.failovers += 1
