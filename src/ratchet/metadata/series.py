"""Time-series blocks: a metric's points over steps as three packed arrays.

Owns `SeriesBlock`, the grouping of single points into blocks and the byte
layout stored in the `time_series` table (little-endian int64 steps, float64
wall times and values). Writing and reading the rows is `store`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ratchet.errors import InvalidArgument

STEP_DTYPE = np.dtype("<i8")
FLOAT_DTYPE = np.dtype("<f8")

#: One point as the tracker buffers it: (context_id, name, step, wall_time, value).
TimePoint = tuple[int, str, int, float, float]


@dataclass(frozen=True, eq=False)
class SeriesBlock:
    """Points of one metric of one context, in logging order."""

    context_id: int
    name: str
    steps: npt.NDArray[np.int64]
    wall_times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if not (len(self.steps) == len(self.wall_times) == len(self.values)):
            raise InvalidArgument(
                f"metric {self.name!r}: steps, wall times and values differ in length"
            )

    @classmethod
    def of(
        cls,
        context_id: int,
        name: str,
        steps: Sequence[int] | npt.ArrayLike,
        wall_times: Sequence[float] | npt.ArrayLike,
        values: Sequence[float] | npt.ArrayLike,
    ) -> SeriesBlock:
        """A block copied from any array-likes, checked and converted to the stored dtypes.

        Copied, because the block waits in a buffer while the caller may refill its arrays.
        """
        step_array = np.array(steps, copy=True)
        if step_array.size and step_array.dtype.kind not in "iu":
            raise InvalidArgument(
                f"metric {name!r}: steps must be integers, not {step_array.dtype}"
            )
        try:
            return cls(
                context_id,
                name,
                step_array.astype(STEP_DTYPE, copy=False).reshape(-1),
                np.array(wall_times, dtype=FLOAT_DTYPE, copy=True).reshape(-1),
                np.array(values, dtype=FLOAT_DTYPE, copy=True).reshape(-1),
            )
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"metric {name!r}: {e}") from e

    def __len__(self) -> int:
        return len(self.steps)

    def pack(self) -> dict[str, object]:
        """The row of the `time_series` table for this block."""
        return {
            "context_id": self.context_id,
            "name": self.name,
            "count": len(self),
            "first_step": int(self.steps.min()) if len(self) else 0,
            "last_step": int(self.steps.max()) if len(self) else 0,
            "steps": self.steps.tobytes(),
            "wall_times": self.wall_times.tobytes(),
            "values": self.values.tobytes(),
        }

    @classmethod
    def unpack(
        cls, context_id: int, name: str, steps: bytes, wall_times: bytes, values: bytes
    ) -> SeriesBlock:
        return cls(
            context_id,
            name,
            np.frombuffer(steps, dtype=STEP_DTYPE),
            np.frombuffer(wall_times, dtype=FLOAT_DTYPE),
            np.frombuffer(values, dtype=FLOAT_DTYPE),
        )


def blocks_from_points(points: Iterable[TimePoint]) -> list[SeriesBlock]:
    """Group single points into one block per (context, metric), keeping their order."""
    grouped: dict[tuple[int, str], tuple[list[int], list[float], list[float]]] = {}
    for context_id, name, step, wall_time, value in points:
        columns = grouped.get((context_id, name))
        if columns is None:
            columns = grouped[(context_id, name)] = ([], [], [])
        columns[0].append(step)
        columns[1].append(wall_time)
        columns[2].append(value)
    return [
        SeriesBlock.of(context_id, name, steps, walls, values)
        for (context_id, name), (steps, walls, values) in grouped.items()
    ]


def concatenate(blocks: Sequence[SeriesBlock]) -> dict[str, SeriesBlock]:
    """Blocks merged per metric name (in the order given), each sorted by step, stably."""
    by_name: dict[str, list[SeriesBlock]] = {}
    for block in blocks:
        by_name.setdefault(block.name, []).append(block)
    merged = {}
    for name, parts in sorted(by_name.items()):
        steps = np.concatenate([p.steps for p in parts])
        order = np.argsort(steps, kind="stable")
        merged[name] = SeriesBlock(
            parts[0].context_id,
            name,
            steps[order],
            np.concatenate([p.wall_times for p in parts])[order],
            np.concatenate([p.values for p in parts])[order],
        )
    return merged
