"""`TypeRegistry`: the artifact, execution and context types and their declared properties.

Owns registering types (idempotent, properties may be added, never changed) and a
per-store cache of them, refreshed on a miss (of a type, or of a property a record
uses) so another process's new type or property is seen. It works on a connection
the store hands in and opens none itself.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from ratchet.errors import AlreadyExists, InvalidArgument, NotFound
from ratchet.metadata import database, schema
from ratchet.metadata.records import Kind, PropertyType, RecordType


class TypeRegistry:
    """Types by (kind, name), cached for the life of one store."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Kind, str], RecordType] = {}

    def covering(self, record_type: RecordType) -> RecordType | None:
        """The cached type when it already declares every property as asked, else None."""
        cached = self._cache.get((record_type.kind, record_type.name))
        if cached is None:
            return None
        for name, wanted in record_type.properties.items():
            if cached.properties.get(name) != wanted:
                return None
        return cached

    def put(self, conn: sa.Connection, record_type: RecordType) -> None:
        """Register a type or add properties to it, within the caller's write transaction."""
        if not isinstance(record_type.name, str) or not record_type.name.strip():
            raise InvalidArgument(f"type name must be a non-empty string, got {record_type.name!r}")
        try:
            wanted = {name: PropertyType(t) for name, t in record_type.properties.items()}
        except ValueError as e:
            raise InvalidArgument(f"type {record_type.name!r}: {e}") from e
        kind, name = record_type.kind, record_type.name
        existing = self.find_one(conn, kind, name)
        if existing is None:
            try:
                with conn.begin_nested():
                    conn.execute(schema.types.insert().values(kind=kind.value, name=name))
            except sa.exc.IntegrityError:
                pass  # another process registered it first; use theirs
            existing = self.find_one(conn, kind, name)
            if existing is None:
                raise NotFound(f"{kind} type {name!r} vanished while it was registered")
        _check_unchanged(existing, wanted)
        new = {prop: t for prop, t in wanted.items() if prop not in existing.properties}
        self._cache.pop((kind, name), None)
        if new:
            # Another process may declare the same property at the same moment: skip
            # its row here, then check that it agrees with ours.
            database.insert_ignoring_duplicates(
                conn,
                schema.type_properties,
                [{"type_id": existing.id, "name": p, "data_type": t.value} for p, t in new.items()],
            )
            _check_unchanged(self.get(conn, kind, name), wanted)
            self._cache.pop((kind, name), None)

    def get(
        self, conn: sa.Connection, kind: Kind, name: str, *, properties: Collection[str] = ()
    ) -> RecordType:
        """The type, or NotFound with a hint to register it.

        A cached type that lacks one of `properties` is read again, since another
        process may have declared it since.
        """
        found = self.find_one(conn, kind, name)
        if found is not None and not set(properties) <= found.properties.keys():
            self._cache.pop((kind, name), None)
            found = self.find_one(conn, kind, name)
        if found is None:
            raise NotFound(f"{kind} type {name!r} is not registered; register it with put_type")
        return found

    def find(self, conn: sa.Connection, kind: Kind | None = None) -> list[RecordType]:
        query = sa.select(schema.types.c.kind, schema.types.c.name).order_by(schema.types.c.id)
        if kind is not None:
            query = query.where(schema.types.c.kind == kind.value)
        return [self.get(conn, Kind(k), n) for k, n in conn.execute(query).all()]

    def by_id(self, conn: sa.Connection, kind: Kind, type_id: int) -> RecordType:
        for (cached_kind, _), cached in self._cache.items():
            if cached_kind == kind and cached.id == type_id:
                return cached
        name = conn.execute(
            sa.select(schema.types.c.name).where(schema.types.c.id == type_id)
        ).scalar_one()
        return self.get(conn, kind, name)

    def find_one(self, conn: sa.Connection, kind: Kind, name: str) -> RecordType | None:
        cached = self._cache.get((kind, name))
        if cached is not None:
            return cached
        type_id = conn.execute(
            sa.select(schema.types.c.id).where(
                schema.types.c.kind == kind.value, schema.types.c.name == name
            )
        ).scalar_one_or_none()
        if type_id is None:
            return None
        props = conn.execute(
            sa.select(schema.type_properties.c.name, schema.type_properties.c.data_type).where(
                schema.type_properties.c.type_id == type_id
            )
        ).all()
        loaded = RecordType(kind, name, {n: PropertyType(t) for n, t in props}, type_id)
        self._cache[(kind, name)] = loaded
        return loaded


def _check_unchanged(existing: RecordType, wanted: dict[str, PropertyType]) -> None:
    for prop, data_type in wanted.items():
        declared = existing.properties.get(prop)
        if declared is not None and declared != data_type:
            raise AlreadyExists(
                f"{existing.kind} type {existing.name!r} already declares {prop!r} "
                f"as {declared}, not {data_type}"
            )
