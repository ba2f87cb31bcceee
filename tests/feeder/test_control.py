from __future__ import annotations

import pytest

from ratchet.errors import InvalidArgument
from ratchet.feeder import FeederControl


def control() -> FeederControl:
    return FeederControl(
        batch_size=64,
        prefetch_depth=2,
        max_prefetch_depth=8,
        slices=("a", "b"),
        weights={"a": 3, "b": 1},
    )


def test_update_applies_and_logs_each_change_with_its_origin() -> None:
    settings = control()
    changes = settings.update("trainer", batch_size=128, weights={"b": 2})
    assert settings.batch_size == 128
    assert settings.weights == {"a": 3.0, "b": 2.0}
    assert [(c.setting, c.value, c.origin) for c in changes] == [
        ("batch_size", 128, "trainer"),
        ("weights", {"a": 3.0, "b": 2.0}, "trainer"),
    ]
    assert settings.drain_changes() == changes
    assert settings.drain_changes() == []


def test_setting_the_current_value_is_not_a_change() -> None:
    settings = control()
    assert settings.update(batch_size=64) == []


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"batch_size": 2.5}, "batch_size must be a positive int"),
        ({"batch_size": True}, "batch_size must be a positive int"),
        ({"prefetch_depth": 9}, "over the maximum of 8"),
        ({"weights": {"z": 1}}, "unknown slice 'z'"),
        ({"weights": {"a": -1}}, "must be finite and >= 0"),
        ({"weights": {"a": float("nan")}}, "must be finite and >= 0"),
        ({"weights": {"a": 0, "b": 0}}, "at least one slice needs a positive weight"),
        ({"weights": [1, 2]}, "weights must map slice names"),
        ({"speed": 3}, "unknown feeder setting 'speed'"),
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(
    update: dict[str, object], message: str
) -> None:
    settings = control()
    with pytest.raises(InvalidArgument, match=message):
        # a valid part next to the bad one is not applied either
        settings.update(**{"prefetch_depth": 3, "batch_size": 32, **update})
    assert settings.batch_size == 64
    assert settings.prefetch_depth == 2
    assert settings.weights == {"a": 3.0, "b": 1.0}
    assert settings.drain_changes() == []


def test_weights_without_slices_are_refused() -> None:
    settings = FeederControl(batch_size=8, prefetch_depth=1, max_prefetch_depth=1)
    with pytest.raises(InvalidArgument, match="no slices"):
        settings.update(weights={"a": 1})


def test_weights_version_counts_weight_changes_only() -> None:
    settings = control()
    settings.update(batch_size=10)
    assert settings.weights_with_version()[1] == 0
    settings.update(weights={"a": 1})
    assert settings.weights_with_version() == ({"a": 1.0, "b": 1.0}, 1)
