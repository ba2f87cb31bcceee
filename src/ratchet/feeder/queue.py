"""A bounded queue whose capacity can change while producer and consumer run.

Owns the hand-off between the feeder's producer thread and its consumer: `put`
blocks while the queue holds `capacity` items, `get` blocks while it is empty
and reports how long it waited (the signal the prefetch policy steers by).
The producer's failure travels to the consumer as the exception itself, raised
from `get`, so an unreadable shard is the training loop's error, not a hang.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """Raised by `put` after the consumer closed the queue."""


class PrefetchQueue(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self._lock = threading.Condition()
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._closed = False
        self._error: BaseException | None = None
        self.high_water = 0  # the most items ever held: tests check it never passes capacity

    @property
    def capacity(self) -> int:
        return self._capacity

    def resize(self, capacity: int) -> None:
        """A new capacity (validated by the caller); a smaller one lets the queue drain first."""
        with self._lock:
            self._capacity = capacity
            self._lock.notify_all()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        with self._lock:
            while len(self._items) >= self._capacity and not self._closed:
                self._lock.wait()
            if self._closed:
                raise Closed
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._lock.notify_all()

    def fail(self, error: BaseException) -> None:
        """The producer stopped with `error`: the consumer gets it after the queued items."""
        with self._lock:
            self._error = error
            self._lock.notify_all()

    def get(self) -> tuple[T, float]:
        """The next item and the seconds spent waiting for it."""
        waited = 0.0  # an item that was ready cost no wait, not the lock's microseconds
        with self._lock:
            if not self._items and self._error is None:
                started = time.perf_counter()
                while not self._items and self._error is None:
                    self._lock.wait()
                waited = time.perf_counter() - started
            if not self._items:
                assert self._error is not None
                raise self._error
            item = self._items.popleft()
            self._lock.notify_all()
        return item, waited

    def close(self) -> None:
        """Stop the producer: a blocked or later `put` raises `Closed`."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._lock.notify_all()
