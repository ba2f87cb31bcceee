from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ratchet.errors import InvalidArgument, NotFound
from ratchet.feeder.plan import Partition, SliceSampler, row_order, shard_order, share, slice_masks


def test_orders_are_pure_functions_of_seed_and_epoch() -> None:
    assert np.array_equal(
        row_order(100, seed=3, epoch=1, shard=2, shuffle=True),
        row_order(100, seed=3, epoch=1, shard=2, shuffle=True),
    )
    assert not np.array_equal(
        row_order(100, seed=3, epoch=1, shard=2, shuffle=True),
        row_order(100, seed=3, epoch=2, shard=2, shuffle=True),
    )
    assert list(shard_order(4, seed=0, epoch=0, shuffle=False)) == [0, 1, 2, 3]
    assert sorted(shard_order(9, seed=5, epoch=3, shuffle=True)) == list(range(9))


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_shares_are_disjoint_and_cover_the_stream(world: int) -> None:
    sizes = [10, 3, 8, 1]
    orders = [
        row_order(n, seed=0, epoch=0, shard=i, shuffle=True) + 100 * i for i, n in enumerate(sizes)
    ]
    served: list[list[int]] = []
    for rank in range(world):
        mine, offset = [], 0
        for order in orders:
            mine.extend(share(order, offset=offset, partition=Partition(rank, world)).tolist())
            offset += len(order)
        served.append(mine)
    everything = [row for rows in served for row in rows]
    assert sorted(everything) == sorted(np.concatenate(orders).tolist())
    assert max(map(len, served)) - min(map(len, served)) <= 1


def test_partition_is_validated() -> None:
    with pytest.raises(InvalidArgument, match="rank must be in"):
        Partition(2, 2)


def test_sampler_realizes_the_requested_mix_within_two_percent() -> None:
    group = np.array(["a"] * 7000 + ["b"] * 2000 + ["c"] * 1000)
    table = pa.table({"group": group})
    masks = slice_masks(table, {name: ("group", name) for name in "abc"})
    sampler = SliceSampler(masks, seed=0)
    weights = {"a": 1.0, "b": 1.0, "c": 2.0}
    drawn = np.concatenate([sampler.draw(100, weights) for _ in range(100)])  # 10,000 samples
    realized = Counter(group[drawn].tolist())
    for name, weight in weights.items():
        assert abs(realized[name] / 10_000 - weight / 4) <= 0.02


def test_sampler_cycles_through_a_slice_before_repeating_a_row() -> None:
    masks = {"only": np.ones(50, dtype=bool)}
    sampler = SliceSampler(masks, seed=1)
    first = sampler.draw(50, {"only": 1.0})
    assert sorted(first.tolist()) == list(range(50))


def test_slice_rules_columns_predicates_and_errors() -> None:
    table = pa.table({"age": [20, 40, 60, 35], "country": ["fr", "de", "fr", "it"]})
    masks = slice_masks(
        table,
        {
            "young": lambda t: pc.less(t["age"], 30),
            "fr": ("country", "fr"),
            "rest": lambda t: np.ones(4, bool),
        },
    )
    assert masks["young"].tolist() == [True, False, False, False]
    assert masks["fr"].tolist() == [False, False, True, False]  # row 0 is already "young"
    assert masks["rest"].tolist() == [False, True, False, True]
    with pytest.raises(NotFound, match="no column 'city'"):
        slice_masks(table, {"x": ("city", "paris")})
    with pytest.raises(InvalidArgument, match="has no rows"):
        slice_masks(table, {"old": lambda t: pc.greater(t["age"], 90)})
    with pytest.raises(InvalidArgument, match="one boolean per row"):
        slice_masks(table, {"bad": lambda t: np.ones(3, bool)})
