from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest
from feeder_shards import write_shards

from ratchet.errors import StoreError
from ratchet.feeder import Feeder, FeederOptions, ReplicaBalancer, Shard, latency, replicas
from ratchet.feeder.replicas import location, read_parquet

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


def test_a_read_in_flight_when_a_copy_proves_bad_does_not_end_the_cooldown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interleaving behind a flaky run: shard A is read from the primary (read ahead)
    # while shard B's primary copy turns out short; A's success, begun before that, must
    # not vouch for the primary again, or later shards go straight back to it.
    primary, mirror = tmp_path / "primary", tmp_path / "mirror"
    write_shards(primary, (10_000, 13))  # B's primary copy is short
    write_shards(mirror, (10_000, 100))
    a_name, b_name = "part-00000.parquet", "part-00001.parquet"
    a = Shard(a_name, (str(primary / a_name), str(mirror / a_name)))
    b = Shard(b_name, (str(primary / b_name), str(mirror / b_name)), rows=100)
    a_started, b_done = threading.Event(), threading.Event()

    def read(url: str, columns: Sequence[str] | None = None) -> pa.Table:
        if url == a.replicas[0]:
            a_started.set()
            b_done.wait(10)
        elif url.startswith(str(mirror)):
            # Measured slower than the primary: only the cooldown keeps reads off the primary.
            time.sleep(0.1)
        return read_parquet(url, columns)

    monkeypatch.setattr(replicas, "read_parquet", read)
    balancer = ReplicaBalancer(explore=0.0)
    in_flight = threading.Thread(target=balancer.read, args=(a,))
    in_flight.start()
    assert a_started.wait(10)
    balancer.read(b)
    b_done.set()
    in_flight.join(10)
    assert balancer.reads == {str(primary): 1, str(mirror): 1}
    balancer.read(a)
    assert balancer.reads == {str(primary): 1, str(mirror): 2}


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
