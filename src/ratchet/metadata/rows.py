"""How records map to table rows and back: kind-specific columns, times and properties.

Owns the translation only; `store` runs the statements.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ratchet.metadata import properties
from ratchet.metadata.records import (
    Artifact,
    ArtifactState,
    Context,
    Execution,
    ExecutionState,
    Kind,
    PropertyValue,
    Record,
    RecordType,
)

KIND_OF: dict[type[Record], Kind] = {
    Artifact: Kind.ARTIFACT,
    Execution: Kind.EXECUTION,
    Context: Kind.CONTEXT,
}


def now() -> float:
    """The current time rounded to the microsecond, so it survives a trip through `datetime`.

    Unrounded, a record's `create_time` could read back later than stored, and
    `created_after=record.create_time` would miss the record itself.
    """
    return round(time.time(), 6)


def to_timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def to_datetime(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def encode(
    record_type: RecordType,
    declared: Mapping[str, PropertyValue],
    custom: Mapping[str, PropertyValue],
) -> dict[bool, dict[str, properties.EncodedValue]]:
    """Encoded properties keyed by `is_custom`; declared ones are checked against the type."""
    return {
        False: properties.encode_all(declared, record_type.properties, type_name=record_type.name),
        True: properties.encode_all(custom, None, type_name=record_type.name),
    }


def columns(record: Record) -> dict[str, Any]:
    """The kind-specific columns of a record."""
    for column in ("name", "uri", "sha256"):
        properties.check_text(
            f"{type(record).__name__.lower()} {column}", getattr(record, column, None)
        )
    if isinstance(record, Artifact):
        return {
            "name": record.name,
            "uri": record.uri,
            "sha256": record.sha256,
            "state": record.state.value,
        }
    if isinstance(record, Execution):
        return {
            "name": record.name,
            "state": record.state.value,
            "start_time": to_timestamp(record.start_time),
            "end_time": to_timestamp(record.end_time),
        }
    return {"name": record.name}


def record(
    kind: Kind,
    row: sa.Row[Any],
    type_name: str,
    declared: dict[str, PropertyValue],
    custom: dict[str, PropertyValue],
) -> Record:
    """A record built from its table row, type name and decoded properties."""
    common: dict[str, Any] = {
        "type": type_name,
        "name": row.name,
        "properties": declared,
        "custom_properties": custom,
        "id": row.id,
        "create_time": to_datetime(row.create_time),
        "update_time": to_datetime(row.update_time),
    }
    if kind == Kind.ARTIFACT:
        return Artifact(uri=row.uri, sha256=row.sha256, state=ArtifactState(row.state), **common)
    if kind == Kind.EXECUTION:
        return Execution(
            state=ExecutionState(row.state),
            start_time=to_datetime(row.start_time),
            end_time=to_datetime(row.end_time),
            **common,
        )
    return Context(**common)
