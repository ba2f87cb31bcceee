"""Deterministic splits: stable hashes, ratios, chunk-independence, time splits."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from ratchet.data.split import column_hash, hash_split, row_hash, time_cutoffs, time_split
from ratchet.errors import InvalidArgument, NotFound


def table(n: int = 20_000) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "id": np.arange(n),
            "user": pa.array([f"user-{i % 997}" if i % 50 else None for i in range(n)]),
            "score": rng.normal(size=n),
        }
    )


# Pinned: a change to any of these reshuffles every split ever made, on every engine.
PINNED_SPLIT = [0, 0, 2, 0, 0, 0, 0, 0, 2, 1, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0]


def test_known_hashes_never_change() -> None:
    assert row_hash(pa.table({"k": [0, 1, 2]}), "k").tolist() == [
        9669113651494106675,
        4643206269710378678,
        3333155598120196549,
    ]
    assert row_hash(pa.table({"s": ["", "a", "ab"]}), "s").tolist() == [
        15916886550466581944,
        12844660297663050346,
        1117273692875268828,
    ]
    assert row_hash(pa.table({"x": [0.5, -1.25]}), "x").tolist() == [
        8757976731105445698,
        7355043284065043344,
    ]
    assert hash_split(pa.table({"k": list(range(20))}), key="k").tolist() == PINNED_SPLIT
    assert len(set(column_hash(pa.array(["", "a", "ab", None])).tolist())) == 4


def test_pinned_split_is_the_same_in_a_fresh_process() -> None:
    script = (
        "import pyarrow as pa\n"
        "from ratchet.data.split import hash_split\n"
        "print(hash_split(pa.table({'k': list(range(20))}), key='k').tolist())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(PINNED_SPLIT)


def test_ratios_are_met_on_large_data() -> None:
    shares = np.bincount(hash_split(table(200_000), key="id"), minlength=3) / 200_000
    assert shares == pytest.approx([0.8, 0.1, 0.1], abs=0.005)
    custom = np.bincount(hash_split(table(200_000), key="id", ratios=[0.5, 0.5])) / 200_000
    assert custom == pytest.approx([0.5, 0.5], abs=0.005)


def test_split_does_not_depend_on_batching_or_column_order() -> None:
    data = table()
    whole = hash_split(data, key="user")
    pieces = np.concatenate(
        [hash_split(batch, key="user") for batch in data.to_batches(max_chunksize=777)]
    )
    assert (whole == pieces).all()
    by_content = hash_split(data)
    assert (by_content == hash_split(data.combine_chunks())).all()
    same_key_same_split = {}
    for user, split in zip(data.column("user").to_pylist(), whole.tolist(), strict=True):
        assert same_key_same_split.setdefault(user, split) == split


def test_types_hash_by_value_and_seed_changes_the_split() -> None:
    ints = column_hash(pa.array([1, 2, None], pa.int64()))
    small = column_hash(pa.array([1, 2, None], pa.int8()))
    assert ints.tolist() == small.tolist()
    assert column_hash(pa.array([0.0]))[0] == column_hash(pa.array([-0.0]))[0]
    dictionary = pa.array(["a", "b", "a"]).dictionary_encode()
    assert column_hash(dictionary).tolist() == column_hash(pa.array(["a", "b", "a"])).tolist()
    data = table()
    assert (hash_split(data, key="id", seed=1) != hash_split(data, key="id")).any()


def test_time_split_keeps_the_newest_rows_out_of_training() -> None:
    start = dt.datetime(2024, 1, 1)
    times = pa.array([start + dt.timedelta(days=i) for i in range(100)] + [None])
    data = pa.table({"t": times})
    cutoffs = time_cutoffs(data.column("t"), [0.8, 0.1, 0.1])
    index = time_split(data, "t", cutoffs)
    assert np.bincount(index).tolist() == [80, 10, 11]  # the row with no time goes to test
    assert index[:80].max() == 0 and index[80:90].tolist() == [1] * 10


def test_bad_split_arguments() -> None:
    data = table(10)
    with pytest.raises(InvalidArgument, match="sum to 1"):
        hash_split(data, ratios=[0.5, 0.2])
    with pytest.raises(NotFound, match="'nope'"):
        hash_split(data, key="nope")
    with pytest.raises(NotFound):
        time_split(data, "nope", [])
    with pytest.raises(InvalidArgument, match="no values"):
        time_cutoffs(pa.array([None, None], pa.timestamp("s")), [0.5, 0.5])
    with pytest.raises(InvalidArgument, match="cannot hash"):
        column_hash(pa.array([[1], [2]]))
