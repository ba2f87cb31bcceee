"""Writing records, their properties and their links to the tables, in the caller's transaction.

Owns the insert-or-replace of one artifact, execution or context with its
properties, and the copy of it returned to the caller; and the idempotent link
rows (attributions, associations). It opens no transaction: `store` does, and
decides what goes into each. Reading records back lives in `loading`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from ratchet.errors import AlreadyExists, InvalidArgument, StoreError
from ratchet.metadata import database, loading, properties, rows, schema
from ratchet.metadata.records import Artifact, Context, Execution, Kind, PropertyValue
from ratchet.metadata.types import TypeRegistry

R = TypeVar("R", Artifact, Execution, Context)

#: Encoded properties keyed by `is_custom`, as `rows.encode` makes them.
Encoded = Mapping[bool, Mapping[str, properties.EncodedValue]]


def put_record(conn: sa.Connection, types: TypeRegistry, record: R) -> R:
    """Insert a new record (id None) or replace a stored one; returns the stored copy.

    The copy is built from the values written, decoded as a read decodes them, so it
    equals what `loading.load_records` would return: reading it back cost two queries
    per record, on every write path (a tuning trial writes two records).
    """
    kind = rows.KIND_OF[type(record)]
    table = schema.RECORD_TABLES[kind]
    record_type = types.get(conn, kind, record.type, properties=record.properties)
    encoded = rows.encode(record_type, record.properties, record.custom_properties)
    now = rows.now()
    values = rows.columns(record)
    values["update_time"] = now
    if record.id is None:
        values.update(type_id=record_type.id, create_time=now)
        try:
            record_id = _insert_id(conn, kind, values)
        except sa.exc.IntegrityError as e:
            raise AlreadyExists(
                f"a {record.type} {kind} named {getattr(record, 'name', None)!r} already exists"
            ) from e
        created = now
    else:
        record_id = record.id
        stored_type = loading.type_name_of(conn, kind, record_id)
        if stored_type != record.type:
            raise InvalidArgument(
                f"{kind} {record_id} is a {stored_type}; its type cannot become {record.type}"
            )
        conn.execute(sa.update(table).where(table.c.id == record_id).values(**values))
        created = conn.execute(
            sa.select(table.c.create_time).where(table.c.id == record_id)
        ).scalar_one()
        # A new record has none to delete: a reused id's properties went with its record.
        delete_properties(conn, kind, record_id)
    insert_properties(conn, kind, record_id, encoded)
    # `rows.record` reads a row's columns as attributes: the values just written stand in.
    row = SimpleNamespace(**{**values, "id": record_id, "create_time": created})
    declared, custom = (_decoded(encoded[is_custom]) for is_custom in (False, True))
    return rows.record(kind, cast(Any, row), record_type.name, declared, custom)  # type: ignore[return-value]


def delete_properties(
    conn: sa.Connection, kind: Kind, record_id: int, named: Encoded | None = None
) -> None:
    """Delete a record's properties: all of them, or only those named in `named`."""
    table = schema.PROPERTY_TABLES[kind]
    owned = table.c.owner_id == record_id
    if named is None:
        conn.execute(sa.delete(table).where(owned))
        return
    for is_custom, values in named.items():
        if values:
            conn.execute(
                sa.delete(table).where(
                    owned, table.c.is_custom == is_custom, table.c.name.in_(list(values))
                )
            )


def insert_properties(conn: sa.Connection, kind: Kind, record_id: int, encoded: Encoded) -> None:
    """Insert a record's encoded properties; those of the same names must be gone first."""
    property_rows = [
        {
            "owner_id": record_id,
            "name": name,
            "is_custom": is_custom,
            "value_type": value_type,
            "int_value": int_value,
            "double_value": double_value,
            "string_value": string_value,
        }
        for is_custom, values in encoded.items()
        for name, (value_type, int_value, double_value, string_value) in values.items()
    ]
    if property_rows:
        statement = database.driver_statement(
            ("property-insert", kind), conn.dialect, schema.PROPERTY_TABLES[kind].insert
        )
        statement.execute_many(conn.connection, property_rows)


def link(
    conn: sa.Connection, table: sa.Table, context_id: int, column: str, ids: Iterable[Any]
) -> None:
    """Link records to a context (attributions, associations); existing links are kept."""
    link_rows = [{"context_id": context_id, column: i} for i in ids]
    if link_rows:
        database.insert_ignoring_duplicates(conn, table, link_rows)


def _decoded(encoded: Mapping[str, properties.EncodedValue]) -> dict[str, PropertyValue]:
    return {name: properties.decode(*value) for name, value in encoded.items()}


def _insert_id(conn: sa.Connection, kind: Kind, values: Mapping[str, Any]) -> int:
    statement = database.driver_statement(
        ("record-insert", kind), conn.dialect, lambda: _record_insert(kind)
    )
    found = statement.fetch_all(conn.connection, values)
    if not found:
        raise StoreError("the database returned no id for a new row")
    return int(found[0][0])


# A record's insert and its properties' are most of what writing one costs; through
# SQLAlchemy's execution layer they cost several times what the database takes (a tuning
# trial writes two records). Compiled once per dialect, they run on the driver's cursor.


def _record_insert(kind: Kind) -> sa.Insert:
    table = schema.RECORD_TABLES[kind]
    return database.numbered_insert(table).returning(table.c.id)
