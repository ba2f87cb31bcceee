"""Sharded Parquet export of a split.

Owns how a stream of record batches becomes numbered Parquet shards of a bounded
number of rows in a folder (`part-00000.parquet`, ...; an engine writing one
folder from many workers gives each batch a `prefix` of its own), written to a temporary
name and renamed, so a reader never sees half a shard. Hashing the folder into a
dataset version is the caller's job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ratchet.errors import InvalidArgument


class ShardWriter:
    """Writes batches of one schema into shards of at most `shard_rows` rows."""

    def __init__(self, folder: Path, *, shard_rows: int = 250_000, prefix: str = "part") -> None:
        if shard_rows < 1:
            raise InvalidArgument(f"shard_rows must be at least 1, got {shard_rows}")
        self.folder = folder
        self.prefix = prefix
        self.shard_rows = shard_rows
        self.paths: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0
        self._schema: pa.Schema | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        while table.num_rows:
            if self._writer is None:
                self._open(table.schema)
            assert self._writer is not None
            room = self.shard_rows - self._in_shard
            part, table = table.slice(0, room), table.slice(room)
            self._writer.write_table(part)
            self._in_shard += part.num_rows
            self.rows += part.num_rows
            if self._in_shard >= self.shard_rows:
                self._close_shard()

    def _open(self, schema: pa.Schema) -> None:
        self._schema = self._schema or schema
        final = self.folder / f"{self.prefix}-{len(self.paths):05d}.parquet"
        self._writer = pq.ParquetWriter(str(final) + ".tmp", self._schema)
        self.paths.append(final)
        self._in_shard = 0

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            final = self.paths[-1]
            os.replace(str(final) + ".tmp", final)
            self._writer = None

    def close(self) -> list[Path]:
        """Finish the last shard; an empty split still gets one (empty) shard with its schema."""
        if self._writer is None and not self.paths and self._schema is not None:
            self._open(self._schema)
        self._close_shard()
        return list(self.paths)

    def set_schema(self, schema: pa.Schema) -> None:
        """The schema of an empty split's shard."""
        self._schema = self._schema or schema


def write_shards(
    batches: Iterable[pa.RecordBatch | pa.Table], folder: Path, *, shard_rows: int = 250_000
) -> list[Path]:
    writer = ShardWriter(folder, shard_rows=shard_rows)
    for batch in batches:
        writer.write(batch)
    return writer.close()
