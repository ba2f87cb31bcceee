"""Record filters and the one query that finds records by them.

Owns `RecordFilter` (what a caller may filter on) and its translation to a
SELECT of ids. Loading the records for those ids is `store`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ratchet.errors import InvalidArgument
from ratchet.metadata import properties, schema
from ratchet.metadata.records import Kind, PropertyType, PropertyValue


@dataclass(frozen=True)
class RecordFilter:
    """What to match; every filter given must hold.

    `properties`/`custom_properties` match by equality; `context` keeps the artifacts
    attributed to (executions associated with) that context id; `parent` keeps the
    child contexts of that context id; `created_after` (inclusive) and
    `created_before` (exclusive) bound the creation time.
    """

    type: str | None = None
    name: str | None = None
    ids: Sequence[int] | None = None
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    custom_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    context: int | None = None
    parent: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    state: str | None = None
    uri: str | None = None
    sha256: str | None = None
    limit: int | None = None
    newest_first: bool = False

    @classmethod
    def of(cls, filters: Mapping[str, Any]) -> RecordFilter:
        """Build from keyword arguments, naming any filter that does not exist."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(filters) - known)
        if unknown:
            raise InvalidArgument(
                f"unknown filter {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        return cls(**filters)


def find_query(kind: Kind, type_id: int | None, spec: RecordFilter) -> sa.Select[Any]:
    """SELECT of the ids of the records of `kind` that match `spec`."""
    table = schema.RECORD_TABLES[kind]
    query = sa.select(table.c.id)
    if type_id is not None:
        query = query.where(table.c.type_id == type_id)
    if spec.name is not None:
        query = query.where(table.c.name == spec.name)
    if spec.ids is not None:
        query = query.where(table.c.id.in_(list(spec.ids)))
    if spec.created_after is not None:
        query = query.where(table.c.create_time >= spec.created_after.timestamp())
    if spec.created_before is not None:
        query = query.where(table.c.create_time < spec.created_before.timestamp())
    for column_name in ("state", "uri", "sha256"):
        wanted = getattr(spec, column_name)
        if wanted is not None:
            if column_name not in table.c:
                raise InvalidArgument(f"{kind} records have no {column_name}")
            query = query.where(table.c[column_name] == str(wanted))
    for is_custom, wanted_props in ((False, spec.properties), (True, spec.custom_properties)):
        for prop_name, value in wanted_props.items():
            query = query.where(_property_matches(kind, table, prop_name, value, is_custom))
    if spec.context is not None:
        query = query.where(table.c.id.in_(_context_members(kind, spec.context)))
    if spec.parent is not None:
        if kind != Kind.CONTEXT:
            raise InvalidArgument("only contexts have parents")
        children = sa.select(schema.parent_contexts.c.child_id).where(
            schema.parent_contexts.c.parent_id == spec.parent
        )
        query = query.where(table.c.id.in_(children))
    query = query.order_by(table.c.id.desc() if spec.newest_first else table.c.id)
    if spec.limit is not None:
        query = query.limit(spec.limit)
    return query


def _property_matches(
    kind: Kind, table: sa.Table, name: str, value: PropertyValue, is_custom: bool
) -> sa.ColumnElement[bool]:
    prop = schema.PROPERTY_TABLES[kind]
    value_type, int_value, double_value, string_value = properties.encode(name, value)
    column, wanted = {
        PropertyType.INT: (prop.c.int_value, int_value),
        PropertyType.BOOL: (prop.c.int_value, int_value),
        PropertyType.DOUBLE: (prop.c.double_value, double_value),
    }.get(PropertyType(value_type), (prop.c.string_value, string_value))
    # The value type must match too, so True does not find 1 nor "1" find a struct;
    # an int also finds an equal double, as a property declared double accepts ints.
    matches = sa.and_(prop.c.value_type == value_type, column == wanted)
    if double_value is not None and math.isnan(double_value):
        # SQLite stores NaN as NULL; PostgreSQL stores NaN and finds it equal to NaN.
        matches = sa.and_(
            prop.c.value_type == value_type,
            sa.or_(prop.c.double_value.is_(None), prop.c.double_value == double_value),
        )
    if value_type == PropertyType.INT:
        matches = sa.or_(
            matches,
            sa.and_(
                prop.c.value_type == PropertyType.DOUBLE.value,
                prop.c.double_value == float(int_value or 0),
            ),
        )
    return sa.exists().where(
        prop.c.owner_id == table.c.id,
        prop.c.name == name,
        prop.c.is_custom == is_custom,
        matches,
    )


def _context_members(kind: Kind, context_id: int) -> sa.Select[Any]:
    if kind == Kind.ARTIFACT:
        link, column = schema.attributions, schema.attributions.c.artifact_id
    elif kind == Kind.EXECUTION:
        link, column = schema.associations, schema.associations.c.execution_id
    else:
        raise InvalidArgument("use parent= to find the contexts within a context")
    return sa.select(column).where(link.c.context_id == context_id)
