"""Reading records and their properties back from the tables, in bulk.

Owns the two read paths every query ends in: records by id (with their
properties), and the properties alone for listings of thousands of records; and
the existence checks writes make first. The queries that pick the ids live in
`query`; the transactions in `store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ratchet.errors import NotFound
from ratchet.metadata import database, properties, rows, schema
from ratchet.metadata.records import Kind, PropertyValue, Record
from ratchet.metadata.types import TypeRegistry

# Ids per IN list: well under the bind-parameter limits of SQLite and PostgreSQL.
CHUNK = 5000

#: (declared properties, custom properties) of one record.
Properties = tuple[dict[str, PropertyValue], dict[str, PropertyValue]]


def load_records(
    conn: sa.Connection, types: TypeRegistry, kind: Kind, record_ids: Sequence[int]
) -> list[Record]:
    """Records by id, in the order given, with their properties; missing ids are skipped."""
    table = schema.RECORD_TABLES[kind]
    prop_table = schema.PROPERTY_TABLES[kind]
    found_rows: dict[int, sa.Row[Any]] = {}
    props: dict[int, tuple[dict[str, PropertyValue], dict[str, PropertyValue]]] = {}
    for start in range(0, len(record_ids), CHUNK):
        chunk = list(record_ids[start : start + CHUNK])
        for row in conn.execute(sa.select(table).where(table.c.id.in_(chunk))).all():
            found_rows[row.id] = row
            props[row.id] = ({}, {})
        read_properties(conn, kind, prop_table.c.owner_id.in_(chunk), props)
    records: list[Record] = []
    for record_id in record_ids:
        found = found_rows.get(record_id)
        if found is None:
            continue
        type_name = types.by_id(conn, kind, found.type_id).name
        declared, custom = props[record_id]
        records.append(rows.record(kind, found, type_name, declared, custom))
    return records


def read_properties(
    conn: sa.Connection,
    kind: Kind,
    where: sa.ColumnElement[bool],
    into: Mapping[int, tuple[dict[str, PropertyValue], dict[str, PropertyValue]]],
) -> None:
    """Decode the properties matching `where` into `into[owner_id]` (declared, custom)."""
    prop_table = schema.PROPERTY_TABLES[kind]
    query = sa.select(
        prop_table.c.owner_id,
        prop_table.c.name,
        prop_table.c.is_custom,
        prop_table.c.value_type,
        prop_table.c.int_value,
        prop_table.c.double_value,
        prop_table.c.string_value,
    ).where(where)
    decode = properties.decode
    # Raw tuples and the common types decoded inline: a listing of 10,000 runs
    # reads a quarter of a million properties.
    for owner_id, name, is_custom, value_type, int_v, double_v, string_v in database.fetch_all(
        conn, query
    ):
        owned = into.get(owner_id)
        if owned is None:
            continue
        if value_type == "double" and double_v is not None:
            value: PropertyValue = double_v
        elif value_type == "string" and string_v is not None:
            value = string_v
        else:
            value = decode(value_type, int_v, double_v, string_v)
        owned[1 if is_custom else 0][name] = value


def check_exists(conn: sa.Connection, kind: Kind, ids: Sequence[int | None]) -> None:
    """NotFound naming the first of `ids` with no record of `kind`."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return
    statement = database.driver_statement(
        ("exists", kind), conn.dialect, lambda: _exists_statement(kind)
    )
    found: set[int] = set()
    for start in range(0, len(wanted), _CHECKED_AT_ONCE):
        chunk = wanted[start : start + _CHECKED_AT_ONCE]
        padded = chunk + chunk[:1] * (_CHECKED_AT_ONCE - len(chunk))
        params = {f"id{k}": record_id for k, record_id in enumerate(padded)}
        found.update(row[0] for row in statement.fetch_all(conn.connection, params))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"no {kind} with id {missing[0]}")


# Every write that links records checks them (a trial's recording, three times): one
# statement with a fixed number of ids, compiled once and run on the driver's cursor in
# the caller's transaction, costs a tenth of building an `IN` list through SQLAlchemy.
_CHECKED_AT_ONCE = 8


def _exists_statement(kind: Kind) -> sa.Select[tuple[int]]:
    table = schema.RECORD_TABLES[kind]
    ids = [sa.bindparam(f"id{k}", type_=sa.Integer) for k in range(_CHECKED_AT_ONCE)]
    return sa.select(table.c.id).where(table.c.id.in_(ids))


def type_name_of(conn: sa.Connection, kind: Kind, record_id: int) -> str:
    """The type name of a stored record, or NotFound."""
    table = schema.RECORD_TABLES[kind]
    name = conn.execute(
        sa.select(schema.types.c.name)
        .select_from(table.join(schema.types, table.c.type_id == schema.types.c.id))
        .where(table.c.id == record_id)
    ).scalar_one_or_none()
    if name is None:
        raise NotFound(f"no {kind} with id {record_id}")
    return str(name)
