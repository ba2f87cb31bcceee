from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from feeder_shards import write_shards

from ratchet.errors import StoreError
from ratchet.feeder import Feeder, FeederOptions, ReplicaBalancer, Shard, latency
from ratchet.feeder.replicas import location

ROWS = 3500


@pytest.fixture(autouse=True)
def _latency_protocol() -> None:
    latency.register()


def mirrored(tmp_path: Path) -> tuple[Path, Path]:
    primary, mirror = tmp_path / "primary", tmp_path / "mirror"
    write_shards(primary)
    shutil.copytree(primary, mirror)
    return primary, mirror


def served_ids(feeder: Feeder) -> list[int]:
    return [int(i) for batch in feeder for i in batch["id"]]


@pytest.mark.parametrize("damage", ["missing", "corrupt", "empty"])
def test_a_damaged_copy_fails_over_without_losing_or_repeating_rows(
    tmp_path: Path, damage: str
) -> None:
    primary, mirror = mirrored(tmp_path)
    for damaged in primary.glob("*.parquet"):  # the first read tries the primary: it must fail
        if damage == "missing":
            damaged.unlink()
        else:
            damaged.write_bytes(b"not parquet at all" if damage == "corrupt" else b"")
    shards = [
        Shard(p.name, (str(primary / p.name), str(mirror / p.name)), rows=rows)
        for p, rows in zip(sorted(mirror.glob("*.parquet")), (1000, 700, 1300, 500), strict=True)
    ]
    feeder = Feeder(shards, batch_size=100, epochs=2, options=FeederOptions(shuffle=False))
    assert sorted(served_ids(feeder)) == sorted(list(range(ROWS)) * 2)
    # then the primary is avoided for its cooldown (reads already in flight may fail too)
    assert 1 <= feeder.balancer.failovers <= FeederOptions().read_ahead
    assert feeder.balancer.reads == {str(mirror): 8}


def test_a_copy_with_the_wrong_row_count_is_treated_as_corrupt(tmp_path: Path) -> None:
    primary, mirror = mirrored(tmp_path)
    write_shards(primary, (1000, 700, 13, 500))  # shard 2 truncated in the primary copy
    shards = [
        Shard(p.name, (str(primary / p.name), str(mirror / p.name)), rows=rows)
        for p, rows in zip(sorted(mirror.glob("*.parquet")), (1000, 700, 1300, 500), strict=True)
    ]
    assert sorted(served_ids(Feeder(shards, batch_size=256))) == list(range(ROWS))


def test_a_stalled_copy_is_given_up_after_the_timeout(tmp_path: Path) -> None:
    primary, mirror = mirrored(tmp_path)
    names = [p.name for p in sorted(mirror.glob("*.parquet"))]
    shards = [
        Shard(
            name,
            (f"latency://1500{(primary / name).resolve()}", str(mirror / name)),
        )
        for name in names
    ]
    feeder = Feeder(shards, batch_size=500, options=FeederOptions(timeout=0.3))
    assert sorted(served_ids(feeder)) == list(range(ROWS))
    assert feeder.balancer.failovers >= 1
    assert sum(feeder.balancer.reads.values()) == len(names)  # every shard read once


def test_no_healthy_copy_is_an_error_naming_the_shard(tmp_path: Path) -> None:
    primary, mirror = mirrored(tmp_path)
    (primary / "part-00003.parquet").write_bytes(b"garbage")
    (mirror / "part-00003.parquet").unlink()
    options = FeederOptions(mirrors=(str(mirror),), shuffle=False)
    with pytest.raises(StoreError, match=r"shard part-00003.parquet has no healthy replica: .*"):
        Feeder(primary, options=options)  # its row count is read when the feeder opens
    balancer = ReplicaBalancer()
    shard = Shard("lost", (str(primary / "part-00003.parquet"), str(mirror / "part-00003.parquet")))
    with pytest.raises(StoreError, match="shard lost has no healthy replica") as raised:
        balancer.read(shard)
    assert str(primary) in str(raised.value) and str(mirror) in str(raised.value)


def test_reads_go_mostly_to_the_fast_copy(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    paths = write_shards(folder, (20,) * 60)
    shards = [
        Shard(p.name, (f"latency://50{p.resolve()}", f"latency://5{p.resolve()}")) for p in paths
    ]
    feeder = Feeder(shards, batch_size=100)
    assert sorted(served_ids(feeder)) == list(range(1200))
    reads = feeder.balancer.reads
    fast = reads[location(shards[0].replicas[1])]
    assert fast / sum(reads.values()) >= 0.7


def test_a_shard_lost_mid_epoch_stops_iteration_with_the_error(tmp_path: Path) -> None:
    primary, mirror = mirrored(tmp_path)
    shards = [
        Shard(p.name, (str(primary / p.name), str(mirror / p.name)), rows=rows)
        for p, rows in zip(sorted(primary.glob("*.parquet")), (1000, 700, 1300, 500), strict=True)
    ]
    for copy in (primary / "part-00002.parquet", mirror / "part-00002.parquet"):
        copy.unlink()
    batches = iter(Feeder(shards, batch_size=100, options=FeederOptions(shuffle=False)))
    with pytest.raises(StoreError, match=r"shard part-00002\.parquet has no healthy replica"):
        for _ in batches:
            pass
