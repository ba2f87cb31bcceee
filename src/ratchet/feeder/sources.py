"""What a feeder reads: a prepared dataset, a folder or glob of Parquet shards, or `Shard`s.

Owns turning the user's `source` (and optional mirror roots, which hold the
same shards under the same relative names) into a list of `Shard`s. A prepared
dataset folder (one with `train/`, `validation/`, `test/`) is read at its
`split`; a dataset version from the metadata store resolves to its folder.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from ratchet.errors import InvalidArgument, NotFound
from ratchet.feeder.replicas import Shard

ShardSource: TypeAlias = str | Path | Sequence[str | Path] | Sequence[Shard]


def _parquet_files(source: str | Path, split: str) -> tuple[Path, list[str]]:
    """The shard root and the shards' names relative to it."""
    path = Path(source)
    if path.is_dir():
        if (path / split).is_dir():
            path = path / split
        names = sorted(p.name for p in path.glob("*.parquet"))
        if not names:
            raise NotFound(f"no Parquet shards in {path}")
        return path, names
    matches = sorted(glob.glob(str(source)))
    if not matches:
        raise NotFound(f"no Parquet shards match {source}")
    root = Path(matches[0]).parent
    return root, [str(Path(m).relative_to(root)) for m in matches]


def find_shards(
    source: ShardSource, *, split: str = "train", mirrors: Sequence[str] = ()
) -> list[Shard]:
    """The shards of `source`, each with a copy under every mirror root."""
    if isinstance(source, str | Path):
        root, names = _parquet_files(source, split)
        return [
            Shard(name, (str(root / name), *(f"{m.rstrip('/')}/{name}" for m in mirrors)))
            for name in names
        ]
    items = list(source)
    if not items:
        raise InvalidArgument("the feeder needs at least one shard")
    if all(isinstance(item, Shard) for item in items):
        if mirrors:
            raise InvalidArgument("give mirrors as Shard replicas, not as well as mirrors=")
        return [item for item in items if isinstance(item, Shard)]
    if any(isinstance(item, Shard) for item in items):
        raise InvalidArgument("give either paths or Shard objects, not both")
    return [
        Shard(
            Path(str(p)).name, (str(p), *(f"{m.rstrip('/')}/{Path(str(p)).name}" for m in mirrors))
        )
        for p in items
    ]
