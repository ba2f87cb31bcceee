"""The feeder's live settings, which the trainer, a policy or a pipeline changes while it runs.

Owns `FeederControl`: batch size, slice weights and prefetch depth behind one
lock, each change validated before anything is applied (a rejected update
leaves every setting as it was) and logged with its time and origin, so a run
can be explained afterwards. It does not decide what to change (`policy`) or
act on the settings (`feeder`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ratchet.errors import InvalidArgument

SETTINGS = ("batch_size", "weights", "prefetch_depth")


@dataclass(frozen=True)
class Change:
    """One applied change: when, which setting, its new value, and who asked."""

    time: float
    setting: str
    value: Any
    origin: str


def positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgument(f"{name} must be a positive int, got {value!r}")
    return value


class FeederControl:
    """Thread-safe settings of one feeder; read them as properties, change them with `update`."""

    def __init__(
        self,
        *,
        batch_size: int,
        prefetch_depth: int,
        max_prefetch_depth: int,
        slices: Sequence[str] = (),
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.max_prefetch_depth = positive_int("max_prefetch_depth", max_prefetch_depth)
        self._batch_size = positive_int("batch_size", batch_size)
        self._prefetch_depth = self._check_depth(prefetch_depth)
        self._slices = tuple(slices)
        equal = dict.fromkeys(self._slices, 1.0)
        self._weights = self._check_weights(weights, equal) if weights is not None else equal
        self._changes: list[Change] = []
        self._weights_version = 0

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def prefetch_depth(self) -> int:
        return self._prefetch_depth

    @property
    def weights(self) -> dict[str, float]:
        with self._lock:
            return dict(self._weights)

    def weights_with_version(self) -> tuple[dict[str, float], int]:
        """The weights and how many times they changed, read together (blocks are stamped)."""
        with self._lock:
            return dict(self._weights), self._weights_version

    def update(self, origin: str = "user", **settings: Any) -> list[Change]:
        """Apply `batch_size=`, `weights=` (some or all slices) and/or `prefetch_depth=`.

        Everything is validated first: on an error nothing changes. Returns the changes
        that took effect (a setting set to its current value is not a change).
        """
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise InvalidArgument(
                f"unknown feeder setting {unknown[0]!r}; settings are {', '.join(SETTINGS)}"
            )
        with self._lock:
            new: dict[str, Any] = {}
            if "batch_size" in settings:
                new["batch_size"] = positive_int("batch_size", settings["batch_size"])
            if "prefetch_depth" in settings:
                new["prefetch_depth"] = self._check_depth(settings["prefetch_depth"])
            if "weights" in settings:
                new["weights"] = self._check_weights(settings["weights"], self._weights)
            now = time.time()
            changes = []
            for setting, value in new.items():
                attribute = f"_{setting}"
                if getattr(self, attribute) != value:
                    setattr(self, attribute, value)
                    changes.append(Change(now, setting, value, origin))
                    self._weights_version += setting == "weights"
            self._changes.extend(changes)
            return changes

    def drain_changes(self) -> list[Change]:
        """The changes since the last call, oldest first (for recording)."""
        with self._lock:
            changes, self._changes = self._changes, []
            return changes

    def _check_depth(self, depth: object) -> int:
        depth = positive_int("prefetch_depth", depth)
        if depth > self.max_prefetch_depth:
            raise InvalidArgument(
                f"prefetch_depth {depth} is over the maximum of {self.max_prefetch_depth}"
            )
        return depth

    def _check_weights(self, weights: object, current: Mapping[str, float]) -> dict[str, float]:
        if not isinstance(weights, Mapping):
            raise InvalidArgument(f"weights must map slice names to numbers, got {weights!r}")
        if not self._slices:
            raise InvalidArgument("this feeder has no slices to weight; define slices first")
        merged = dict(current)
        for name, weight in weights.items():
            if name not in self._slices:
                raise InvalidArgument(
                    f"unknown slice {name!r}; slices are {', '.join(self._slices)}"
                )
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise InvalidArgument(f"weight of slice {name!r} must be a number, got {weight!r}")
            if not math.isfinite(weight) or weight < 0:
                raise InvalidArgument(
                    f"weight of slice {name!r} must be finite and >= 0, got {weight}"
                )
            merged[name] = float(weight)
        if sum(merged.values()) <= 0:
            raise InvalidArgument("at least one slice needs a positive weight")
        return merged
