"""The copies a write returns are built without reading the record back: they must equal a read.

Every test runs on SQLite and PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ratchet.metadata import (
    Artifact,
    ArtifactState,
    Context,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.records import PropertyValue

TYPES = (
    RecordType(
        Kind.ARTIFACT,
        "Model",
        {
            "accuracy": PropertyType.DOUBLE,
            "final": PropertyType.BOOL,
            "config": PropertyType.STRUCT,
        },
    ),
    RecordType(Kind.EXECUTION, "Train", {"epochs": PropertyType.INT, "lr": PropertyType.DOUBLE}),
    RecordType(Kind.CONTEXT, "Run", {"seed": PropertyType.INT, "note": PropertyType.STRING}),
)
CUSTOM: dict[str, PropertyValue] = {
    "int": 7,
    "true": True,
    "fraction": 0.1,
    "infinite": -math.inf,
    "unicode": "naïve ✓",
    "struct": {"b": [1, 2.5, None], "a": {"nested": False}},
}


@pytest.fixture
def typed(store: MetadataStore) -> MetadataStore:
    for record_type in TYPES:
        store.put_type(record_type)
    return store


def test_a_new_records_copy_equals_its_read_back(typed: MetadataStore) -> None:
    naive = datetime(2024, 5, 1, 12, 30, 15, 123456)  # stored as local time, read back in UTC
    elsewhere = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=5)))
    artifact = typed.put_artifact(
        Artifact(
            "Model",
            uri="file:///m",
            sha256="ab" * 32,
            state=ArtifactState.PENDING,
            name="m",
            properties={"accuracy": 1, "final": True, "config": {"z": 1, "a": [1]}},
            custom_properties=CUSTOM,
        )
    )
    execution = typed.put_execution(
        Execution(
            "Train",
            state=ExecutionState.RUNNING,
            properties={"epochs": 3, "lr": 0.5},
            custom_properties=CUSTOM,
            start_time=naive,
            end_time=elsewhere,
        )
    ).execution
    context = typed.put_context(Context("Run", "r", properties={"seed": 1, "note": ""}))
    assert artifact.id is not None and execution.id is not None and context.id is not None
    assert type(artifact.properties["accuracy"]) is float  # an int for a declared double
    assert execution.start_time is not None and execution.start_time.tzinfo == UTC
    assert artifact == typed.get_artifact(artifact.id)
    assert execution == typed.get_execution(execution.id)
    assert context == typed.get_context(context.id)


def test_a_nan_property_is_nan_in_the_copy_as_in_a_read(typed: MetadataStore) -> None:
    # SQLite stores NaN as NULL; a read decodes that as NaN, and so must the copy.
    written = typed.put_artifact(
        Artifact("Model", properties={"accuracy": math.nan}, custom_properties={"x": math.nan})
    )
    read = typed.get_artifact(written.id or 0)
    for record in (written, read):
        values = (record.properties["accuracy"], record.custom_properties["x"])
        assert all(isinstance(v, float) and math.isnan(v) for v in values)


def test_a_replaced_records_copy_keeps_its_create_time_and_equals_its_read_back(
    typed: MetadataStore,
) -> None:
    first = typed.put_context(
        Context("Run", "r", properties={"seed": 1}, custom_properties={"old": 1})
    )
    replaced = typed.put_context(
        Context(
            "Run", "renamed", properties={"note": "n"}, custom_properties={"new": [1]}, id=first.id
        )
    )
    assert replaced.id == first.id
    assert replaced.create_time == first.create_time
    assert replaced.properties == {"note": "n"} and replaced.custom_properties == {"new": [1]}
    assert replaced == typed.get_context(first.id or 0)
    execution = typed.put_execution(Execution("Train")).execution
    again = typed.put_execution(
        Execution(
            "Train", state=ExecutionState.COMPLETE, end_time=datetime(2024, 1, 1), id=execution.id
        )
    ).execution
    assert again.create_time == execution.create_time
    assert again == typed.get_execution(execution.id or 0)
