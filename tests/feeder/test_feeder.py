from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from feeder_shards import slow_copies, write_shards

from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound
from ratchet.feeder import (
    AdaptivePrefetch,
    Feeder,
    FeederOptions,
    LossWeightedSlices,
    NoiseScaleBatchSize,
    Partition,
    Sampling,
    ScheduledBatchSize,
    ThroughputBatchSize,
    latency,
)
from ratchet.metadata import MetadataStore
from ratchet.tracking import Tracker

ROWS = 3500


def ids_of(batches: object) -> list[int]:
    return [int(i) for batch in batches for i in batch["id"]]  # type: ignore[attr-defined]


def test_uniform_mode_serves_every_row_exactly_once_per_epoch(shards: Path) -> None:
    feeder = Feeder(shards, batch_size=128, seed=4, epochs=3)
    served = ids_of(feeder)
    assert len(served) == 3 * ROWS
    for epoch in range(3):
        assert sorted(served[epoch * ROWS : (epoch + 1) * ROWS]) == list(range(ROWS))
    assert served[:ROWS] != served[ROWS : 2 * ROWS]  # each epoch has its own order


def test_batches_never_span_epochs_and_drop_last_drops_the_short_one(shards: Path) -> None:
    sizes = [len(b["id"]) for b in Feeder(shards, batch_size=1000, seed=0, epochs=2)]
    assert sizes == [1000, 1000, 1000, 500] * 2
    options = FeederOptions(drop_last=True)
    sizes = [len(b["id"]) for b in Feeder(shards, batch_size=1000, epochs=2, options=options)]
    assert sizes == [1000] * 6


def test_same_seed_same_sequence_other_seed_other_sequence(shards: Path) -> None:
    first = ids_of(Feeder(shards, batch_size=100, seed=7))
    assert ids_of(Feeder(shards, batch_size=100, seed=7)) == first
    assert ids_of(Feeder(shards, batch_size=100, seed=8)) != first
    ordered = ids_of(Feeder(shards, batch_size=100, options=FeederOptions(shuffle=False)))
    assert ordered == list(range(ROWS))


def test_a_batch_size_sent_applies_to_the_very_next_batch(shards: Path) -> None:
    feeder = Feeder(shards, batch_size=100, seed=1, options=FeederOptions(prefetch_depth=8))
    batches = iter(feeder)
    sizes = [len(next(batches)["id"])]
    sizes.append(len(batches.send({"batch_size": 37})["id"]))
    sizes.append(len(next(batches)["id"]))
    feeder.control.update(batch_size=250)  # the control object, as a pipeline would
    sizes.append(len(next(batches)["id"]))
    assert sizes == [100, 37, 37, 250]
    rest = ids_of(batches)
    assert len(rest) == ROWS - 424
    assert [c.setting for c in feeder.history] == ["batch_size", "batch_size"]


def test_batch_size_changes_lose_and_duplicate_nothing(shards: Path) -> None:
    batches = iter(Feeder(shards, batch_size=64, seed=2, epochs=2))
    served: list[int] = []
    for number, size in enumerate([5, 300, 1, 900, 64, 17] * 100):
        try:
            batch = batches.send({"batch_size": size}) if number else next(batches)
        except StopIteration:
            break
        served.extend(batch["id"].tolist())
    assert sorted(served) == sorted(list(range(ROWS)) * 2)


def test_invalid_feedback_is_refused_and_the_feeder_keeps_going(shards: Path) -> None:
    feeder = Feeder(shards, batch_size=100, seed=0)
    batches = iter(feeder)
    next(batches)
    for bad, message in [
        ({"batch_size": -5}, "positive int"),
        ({"weights": {"a": 1}}, "no slices"),
        ({"learning_rate": 0.1}, "unknown feedback 'learning_rate'"),
        ("fast", "feedback must be a mapping"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            batches.send(bad)  # type: ignore[arg-type]
    assert len(next(batches)["id"]) == 100
    assert len(ids_of(batches)) == ROWS - 200


def test_torch_output_shares_memory_and_keeps_float32(shards: Path) -> None:
    batch = next(iter(Feeder(shards, batch_size=10, options=FeederOptions(output="torch"))))
    assert isinstance(batch["x"], torch.Tensor)
    assert batch["x"].dtype == torch.float32
    assert batch["id"].dtype == torch.int64


def test_columns_option_reads_only_those(shards: Path) -> None:
    batch = next(iter(Feeder(shards, batch_size=10, options=FeederOptions(columns=("id",)))))
    assert list(batch) == ["id"]


def test_partitions_split_an_epoch_between_consumers(shards: Path) -> None:
    served = []
    for rank in range(3):
        options = FeederOptions(partition=Partition(rank, 3))
        served.append(ids_of(Feeder(shards, batch_size=64, seed=9, options=options)))
    assert sorted(served[0] + served[1] + served[2]) == list(range(ROWS))
    assert {len(s) for s in served} <= {ROWS // 3, ROWS // 3 + 1}


def test_weighted_mode_realizes_the_mix_within_two_percent(shards: Path) -> None:
    weights = {"a": 1.0, "b": 1.0, "c": 2.0}
    feeder = Feeder(
        shards, batch_size=100, seed=0, epochs=None, sampling=Sampling("group", weights)
    )
    batches = iter(feeder)
    groups: Counter[str] = Counter()
    for _ in range(100):  # 10,000 samples
        groups.update(next(batches)["group"].tolist())
    batches.close()
    for name, weight in weights.items():
        assert abs(groups[name] / 10_000 - weight / 4) <= 0.02


def test_weight_changes_apply_at_the_next_batch_not_after_the_queue(shards: Path) -> None:
    options = FeederOptions(prefetch_depth=16)
    feeder = Feeder(
        shards, batch_size=200, epochs=None, sampling=Sampling("group"), options=options
    )
    batches = iter(feeder)
    next(batches)
    batch = batches.send({"weights": {"a": 0.0, "b": 0.0, "c": 1.0}})
    assert set(batch["group"].tolist()) == {"c"}
    batches.close()


def test_weighted_epochs_serve_as_many_rows_as_the_data_holds(shards: Path) -> None:
    served = ids_of(Feeder(shards, batch_size=300, epochs=2, sampling=Sampling("group")))
    assert len(served) == 2 * ROWS


def test_the_prefetch_queue_never_holds_more_than_its_depth(shards: Path) -> None:
    feeder = Feeder(shards, batch_size=10, options=FeederOptions(prefetch_depth=3))
    batches = iter(feeder)
    assert len(ids_of(batches)) == ROWS
    assert 1 <= batches.queue.high_water <= 3


def test_scheduled_batch_size_follows_the_schedule(shards: Path) -> None:
    policy = ScheduledBatchSize({0: 10, 3: 50})
    sizes = [len(b["id"]) for b in Feeder(shards, batch_size=10, policies=[policy])][:6]
    assert sizes == [10, 10, 10, 50, 50, 50]


def test_noise_scale_policy_grows_the_batch_only_when_the_signal_is_clean(shards: Path) -> None:
    feeder = Feeder(shards, batch_size=32, policies=[NoiseScaleBatchSize(maximum=256)])
    batches = iter(feeder)
    next(batches)
    assert len(batches.send({"gradient_noise_scale": 40.0})["id"]) == 32  # below 2 x 32
    batches.send({"gradient_noise_scale": 1000.0})
    assert len(next(batches)["id"]) == 64
    assert feeder.history[-1].origin == "NoiseScaleBatchSize"
    with pytest.raises(InvalidArgument, match="finite"):
        batches.send({"gradient_noise_scale": float("inf")})
    batches.close()


def test_loss_weighted_slices_upweight_the_worst_slice(shards: Path) -> None:
    feeder = Feeder(
        shards,
        batch_size=100,
        epochs=None,
        sampling=Sampling("group"),
        policies=[LossWeightedSlices()],
    )
    batches = iter(feeder)
    next(batches)
    batches.send({"slice_loss": {"a": 0.1, "b": 0.1, "c": 0.8}})
    weights = feeder.control.weights
    assert weights["c"] > weights["a"] and weights["c"] > weights["b"]
    with pytest.raises(InvalidArgument, match="unknown slice 'z'"):
        batches.send({"slice_loss": {"z": 1.0}})
    batches.close()


def test_adaptive_prefetch_deepens_the_queue_when_the_consumer_waits(tmp_path: Path) -> None:
    latency.register()
    urls = slow_copies(tmp_path, shards=40, rows=50, delay_ms=20)
    policy = AdaptivePrefetch(window=5)
    feeder = Feeder(urls, batch_size=10, policies=[policy], options=FeederOptions(prefetch_depth=1))
    for _ in feeder:
        pass
    assert feeder.control.prefetch_depth > 1
    assert [c.setting for c in feeder.history if c.origin == "AdaptivePrefetch"]


def test_changes_and_telemetry_are_recorded_in_the_run(shards: Path, tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path}/store.db")
    tracker = Tracker(store, "feeding")
    run = tracker.start_run("r1")
    feeder = Feeder(shards, batch_size=100, run=run, options=FeederOptions(log_every=5))
    batches = iter(feeder)
    next(batches)
    batches.send({"batch_size": 50})
    for _ in batches:
        pass
    run.end()
    series = run.get_time_series_df()
    assert set(series.columns) >= {
        "feeder/batch_size",
        "feeder/rows_per_second",
        "feeder/wait_fraction",
        "feeder/queue_length",
        "feeder/replica_reads/0",
    }
    assert series["feeder/batch_size"].dropna().tolist() == [50.0]
    assert run.get_params()["feeder.rows"] == ROWS
    tracker.close()
    store.close()


def test_bad_sources_get_clear_errors(tmp_path: Path, shards: Path) -> None:
    with pytest.raises(NotFound, match="no Parquet shards"):
        Feeder(tmp_path / "empty-dir-that-does-not-exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="no Parquet shards in"):
        Feeder(tmp_path / "empty")
    with pytest.raises(InvalidArgument, match="batch_size must be a positive int"):
        Feeder(shards, batch_size=0)
    with pytest.raises(InvalidArgument, match="cannot slice by 'city'"):
        Feeder(shards, sampling=Sampling("city"))
    with pytest.raises(InvalidArgument, match="epochs must be"):
        Feeder(shards, epochs=0)


def test_a_prepared_dataset_folder_is_read_at_its_split(tmp_path: Path) -> None:
    write_shards(tmp_path / "dataset" / "train", (100, 50))
    write_shards(tmp_path / "dataset" / "validation", (30,))
    assert len(ids_of(Feeder(tmp_path / "dataset"))) == 150
    options = FeederOptions(split="validation")
    assert len(ids_of(Feeder(tmp_path / "dataset", options=options))) == 30
    assert np.array_equal(
        np.sort(ids_of(Feeder(str(tmp_path / "dataset" / "train" / "*.parquet")))), np.arange(150)
    )


def test_adaptive_prefetch_respects_the_maximum_depth_and_gives_memory_back(
    tmp_path: Path, shards: Path
) -> None:
    latency.register()
    urls = slow_copies(tmp_path, shards=30, rows=50, delay_ms=20)
    capped = FeederOptions(prefetch_depth=1, max_prefetch_depth=2)
    feeder = Feeder(urls, batch_size=10, policies=[AdaptivePrefetch(window=5)], options=capped)
    assert len(ids_of(feeder)) == 1500
    assert feeder.control.prefetch_depth == 2
    quiet = AdaptivePrefetch(window=2, patience=2)
    options = FeederOptions(prefetch_depth=8)
    feeder = Feeder(shards, batch_size=10, epochs=3, policies=[quiet], options=options)
    batches = iter(feeder)
    for _ in batches:
        time.sleep(0.0005)  # a consumer slower than the local source: it never waits
    assert feeder.control.prefetch_depth < 8


def test_skip_rows_resumes_an_epoch_where_it_left_off(shards: Path) -> None:
    whole = ids_of(Feeder(shards, batch_size=100, seed=5, epochs=2))
    resumed = ids_of(
        Feeder(shards, batch_size=100, seed=5, epochs=2, options=FeederOptions(skip_rows=1234))
    )
    assert resumed == whole[1234:]


def test_a_closed_feeder_says_so(shards: Path) -> None:
    feeder = Feeder(shards)
    feeder.close()
    with pytest.raises(FailedPrecondition, match="feeder is closed"):
        iter(feeder)


def test_throughput_policy_grows_the_batch_while_rows_per_second_rise(shards: Path) -> None:
    policy = ThroughputBatchSize(minimum=8, maximum=64, window=3)
    feeder = Feeder(shards, batch_size=8, epochs=None, policies=[policy])
    batches = iter(feeder)
    for _ in range(40):
        next(batches)
        time.sleep(0.002)  # a fixed cost per batch: a bigger batch serves more rows/s
    batches.close()
    assert feeder.control.batch_size == 64
    assert [c.value for c in feeder.history] == [16, 32, 64]


def test_throughput_policy_stops_growing_past_its_memory_limit(shards: Path) -> None:
    policy = ThroughputBatchSize(minimum=8, maximum=64, window=3, memory_limit_mb=100)
    feeder = Feeder(shards, batch_size=8, epochs=None, policies=[policy])
    batches = iter(feeder)
    next(batches)
    for _ in range(20):
        batches.send({"memory_mb": 500.0})
        time.sleep(0.002)
    batches.close()
    assert feeder.control.batch_size == 8
