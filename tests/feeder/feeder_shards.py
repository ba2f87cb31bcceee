"""Shards for feeder tests: small Parquet files whose rows carry a unique `id`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SIZES = (1000, 700, 1300, 500)


def write_shards(folder: Path, sizes: tuple[int, ...] = SIZES, *, seed: int = 0) -> list[Path]:
    """Shards with ids 0..N-1 in order, a float feature and a 3-valued group column."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, start = [], 0
    for number, rows in enumerate(sizes):
        table = pa.table(
            {
                "id": np.arange(start, start + rows, dtype=np.int64),
                "x": rng.normal(size=rows),
                "group": rng.choice(["a", "b", "c"], rows, p=[0.7, 0.2, 0.1]),
            }
        )
        path = folder / f"part-{number:05d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
        start += rows
    return paths


def slow_copies(folder: Path, *, shards: int, rows: int, delay_ms: float) -> list[str]:
    """`shards` shards of `rows` rows each, as `latency://` URLs that take `delay_ms` to open."""
    paths = write_shards(folder / "slow", (rows,) * shards)
    return [f"latency://{delay_ms}{path.resolve()}" for path in paths]
