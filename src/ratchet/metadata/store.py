"""`MetadataStore`: the one store of artifacts, executions, contexts, events and time series.

Owns every write and read of those records through SQLAlchemy Core, the same
code for SQLite and PostgreSQL. Each public write is one transaction, so a
record is never half-written; `transaction()` makes several writes one. How a
record becomes rows lives in `writing`, reading it back in `loading`, lineage
traversal in `lineage`, how a URL becomes an engine in `database`, the tables
in `schema`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import sqlalchemy as sa

from ratchet.config import Config
from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound
from ratchet.metadata import database, lineage, loading, rows, schema, writing
from ratchet.metadata.query import RecordFilter, find_query
from ratchet.metadata.records import (
    Artifact,
    Context,
    Event,
    EventType,
    Execution,
    ExecutionWrite,
    Kind,
    LineageGraph,
    PropertyValue,
    Record,
    RecordType,
)
from ratchet.metadata.series import SeriesBlock, concatenate
from ratchet.metadata.types import TypeRegistry


class MetadataStore:
    """Artifacts, executions and contexts with typed properties, lineage events and time series.

    Open it with a SQLAlchemy URL (`sqlite:///path/metadata.db`,
    `postgresql+psycopg://user@host/db`) or `MetadataStore.from_config(config)`.
    Opening applies pending schema migrations and refuses a store newer than this code.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self._engine = database.create_engine(url)
        self._types = TypeRegistry()
        self._conn: sa.Connection | None = None  # set in the view `transaction()` yields
        self._failed: str | None = None  # the view's failed write, if any
        try:
            if migrate:
                database.migrate(self._engine, url)
            else:
                with self._read() as conn:
                    database.check_revision(database.current_revision(conn), url)
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_config(cls, config: Config, *, create: bool = True) -> MetadataStore:
        """Open the store `config` names; without `create`, a missing embedded store is NotFound."""
        if config.uses_default_db:
            database.prepare_home(config.home, create=create)
        return cls(config.db_url)

    def close(self) -> None:
        if self._conn is None:  # a transaction's view leaves the engine to its store
            self._engine.dispose()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[MetadataStore]:
        """A view of this store whose writes commit together when the block ends.

        If the block raises, none of them is kept; nor if a write through the view
        failed, even when the error was caught: the failed write may be half done, so
        the view refuses later writes and the block ends in FailedPrecondition (as
        PostgreSQL itself does; savepoints to undo one write alone cost more than the
        writes they guard). Reads through the view see its writes. Use the view from
        one thread, and write through it rather than through this store inside the
        block: on SQLite the view holds the write lock, so this store's writes would
        wait for it. Inside a view, `transaction()` joins it.
        """
        if self._conn is not None:
            yield self
            return
        try:
            with self._write() as conn:
                view = copy.copy(self)
                view._conn = conn
                yield view
                view._check_not_failed()
        except BaseException:
            # Types the view registered are gone with the rollback: forget the cached ones.
            self._types = TypeRegistry()
            raise

    def _check_not_failed(self) -> None:
        if self._failed is not None:
            raise FailedPrecondition(
                f"a write in this transaction failed ({self._failed}); nothing was kept"
            )

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        if self._conn is not None:
            with database.translated_errors(self.url):
                yield self._conn
            return
        with database.translated_errors(self.url), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        if self._conn is not None:
            self._check_not_failed()
            try:
                with database.translated_errors(self.url):
                    yield self._conn
            except BaseException as e:
                self._failed = f"{type(e).__name__}: {e}"
                raise
            return
        with database.translated_errors(self.url), self._engine.connect() as conn:
            conn.execution_options(**{database.WRITE_OPTION: True})
            with conn.begin():
                yield conn

    # ---- types -------------------------------------------------------------------------

    def put_type(self, record_type: RecordType) -> RecordType:
        """Register a type, or add properties to it; changing a declared property is an error."""
        known = self._types.covering(record_type)
        if known is not None:
            return known  # declared already, as asked: no write transaction for a no-op
        with self._write() as conn:
            self._types.put(conn, record_type)
        with self._read() as conn:
            return self._types.get(conn, record_type.kind, record_type.name)

    def get_type(self, kind: Kind, name: str) -> RecordType:
        with self._read() as conn:
            return self._types.get(conn, kind, name)

    def find_types(self, kind: Kind | None = None) -> list[RecordType]:
        with self._read() as conn:
            return self._types.find(conn, kind)

    # ---- records -----------------------------------------------------------------------

    def put_artifact(self, artifact: Artifact) -> Artifact:
        """Insert a new artifact (id None) or replace a stored one; returns it with its id."""
        with self._write() as conn:
            return writing.put_record(conn, self._types, artifact)

    def put_execution(
        self,
        execution: Execution,
        *,
        inputs: Mapping[str, Artifact] | None = None,
        outputs: Mapping[str, Artifact] | None = None,
        contexts: Sequence[Context] = (),
    ) -> ExecutionWrite:
        """Write an execution, its input and output artifacts, their events and context links.

        All of it is one transaction: either every record is written or none is.
        The keys of `inputs` and `outputs` become the events' paths.
        """
        with self._write() as conn:
            stored = writing.put_record(conn, self._types, execution)
            assert stored.id is not None
            now = rows.now()
            written: dict[EventType, dict[str, Artifact]] = {}
            event_rows = []
            for event_type, group in ((EventType.INPUT, inputs), (EventType.OUTPUT, outputs)):
                written[event_type] = {}
                for path, artifact in (group or {}).items():
                    saved = (
                        writing.put_record(conn, self._types, artifact)
                        if artifact.id is None
                        else artifact
                    )
                    assert saved.id is not None
                    written[event_type][path] = saved
                    event_rows.append(
                        Event(saved.id, stored.id, event_type, path, rows.to_datetime(now))
                    )
            loading.check_exists(
                conn, Kind.ARTIFACT, [a.id for g in written.values() for a in g.values()]
            )
            loading.check_exists(conn, Kind.CONTEXT, [c.id for c in contexts])
            if event_rows:
                conn.execute(
                    schema.events.insert(),
                    [
                        {
                            "artifact_id": e.artifact_id,
                            "execution_id": e.execution_id,
                            "type": e.type.value,
                            "path": e.path,
                            "time": now,
                        }
                        for e in event_rows
                    ],
                )
            for context in contexts:
                saved_context = (
                    writing.put_record(conn, self._types, context)
                    if context.id is None
                    else context
                )
                assert saved_context.id is not None
                writing.link(
                    conn, schema.associations, saved_context.id, "execution_id", [stored.id]
                )
                artifact_ids = [a.id for g in written.values() for a in g.values() if a.id]
                writing.link(
                    conn, schema.attributions, saved_context.id, "artifact_id", artifact_ids
                )
        return ExecutionWrite(
            stored, written[EventType.INPUT], written[EventType.OUTPUT], tuple(event_rows)
        )

    def put_context(self, context: Context) -> Context:
        """Insert a new context (id None) or replace a stored one; names are unique per type."""
        _check_name("context name", context.name)
        with self._write() as conn:
            return writing.put_record(conn, self._types, context)

    def put_parent_context(self, parent_id: int, child_id: int) -> None:
        """Make `parent_id` a parent of `child_id` (an experiment of a run, say); idempotent."""
        if parent_id == child_id:
            raise InvalidArgument("a context cannot be its own parent")
        with self._write() as conn:
            loading.check_exists(conn, Kind.CONTEXT, [parent_id, child_id])
            database.insert_ignoring_duplicates(
                conn, schema.parent_contexts, [{"parent_id": parent_id, "child_id": child_id}]
            )

    def put_attribution(self, context_id: int, artifact_id: int) -> None:
        """Attribute an artifact to a context; idempotent."""
        with self._write() as conn:
            loading.check_exists(conn, Kind.CONTEXT, [context_id])
            loading.check_exists(conn, Kind.ARTIFACT, [artifact_id])
            writing.link(conn, schema.attributions, context_id, "artifact_id", [artifact_id])

    def put_association(self, context_id: int, execution_id: int) -> None:
        """Associate an execution with a context; idempotent."""
        with self._write() as conn:
            loading.check_exists(conn, Kind.CONTEXT, [context_id])
            loading.check_exists(conn, Kind.EXECUTION, [execution_id])
            writing.link(conn, schema.associations, context_id, "execution_id", [execution_id])

    def set_properties(
        self,
        kind: Kind,
        record_id: int,
        *,
        properties: Mapping[str, PropertyValue] | None = None,
        custom_properties: Mapping[str, PropertyValue] | None = None,
    ) -> None:
        """Set some properties of a stored record, leaving the others as they are."""
        with self._write() as conn:
            type_name = loading.type_name_of(conn, kind, record_id)
            record_type = self._types.get(conn, kind, type_name, properties=properties or {})
            encoded = rows.encode(record_type, properties or {}, custom_properties or {})
            writing.delete_properties(conn, kind, record_id, encoded)
            writing.insert_properties(conn, kind, record_id, encoded)
            conn.execute(
                sa.update(schema.RECORD_TABLES[kind])
                .where(schema.RECORD_TABLES[kind].c.id == record_id)
                .values(update_time=rows.now())
            )

    # ---- reads -------------------------------------------------------------------------

    def get_artifact(self, artifact_id: int) -> Artifact:
        return self._get(Kind.ARTIFACT, artifact_id)  # type: ignore[return-value]

    def get_execution(self, execution_id: int) -> Execution:
        return self._get(Kind.EXECUTION, execution_id)  # type: ignore[return-value]

    def get_context(self, context_id: int) -> Context:
        return self._get(Kind.CONTEXT, context_id)  # type: ignore[return-value]

    def _get(self, kind: Kind, record_id: int) -> Record:
        with self._read() as conn:
            found = loading.load_records(conn, self._types, kind, [record_id])
        if not found:
            raise NotFound(f"no {kind} with id {record_id}")
        return found[0]

    def find_artifacts(self, **filters: Any) -> list[Artifact]:
        """Artifacts matching every filter given; the filters are `RecordFilter`'s fields."""
        return self.find(Kind.ARTIFACT, RecordFilter.of(filters))  # type: ignore[return-value]

    def find_executions(self, **filters: Any) -> list[Execution]:
        """Executions matching every filter given; the filters are `RecordFilter`'s fields."""
        return self.find(Kind.EXECUTION, RecordFilter.of(filters))  # type: ignore[return-value]

    def find_contexts(self, **filters: Any) -> list[Context]:
        """Contexts matching every filter given; the filters are `RecordFilter`'s fields."""
        return self.find(Kind.CONTEXT, RecordFilter.of(filters))  # type: ignore[return-value]

    def find_context(self, type: str, name: str) -> Context | None:
        """The context of this type and name, or None."""
        found = self.find_contexts(type=type, name=name)
        return found[0] if found else None

    def find(self, kind: Kind, spec: RecordFilter) -> list[Record]:
        """Records of `kind` matching `spec`, oldest first unless `spec.newest_first`."""
        with self._read() as conn:
            type_id = None
            if spec.type is not None:
                found_type = self._types.find_one(conn, kind, spec.type)
                if found_type is None:
                    return []
                type_id = found_type.id
            found_ids = list(conn.execute(find_query(kind, type_id, spec)).scalars())
            return loading.load_records(conn, self._types, kind, found_ids)

    def find_properties(
        self, kind: Kind, spec: RecordFilter
    ) -> dict[int, tuple[dict[str, PropertyValue], dict[str, PropertyValue]]]:
        """(properties, custom properties) by id of the records matching `spec`, in order.

        For listings of thousands of records (an experiment's runs), where building the
        records would cost more than reading them.
        """
        with self._read() as conn:
            type_id = None
            if spec.type is not None:
                found_type = self._types.find_one(conn, kind, spec.type)
                if found_type is None:
                    return {}
                type_id = found_type.id
            ids_query = find_query(kind, type_id, spec)
            found: dict[int, tuple[dict[str, PropertyValue], dict[str, PropertyValue]]] = {
                record_id: ({}, {}) for record_id in conn.execute(ids_query).scalars()
            }
            owner = schema.PROPERTY_TABLES[kind].c.owner_id
            loading.read_properties(conn, kind, owner.in_(ids_query.subquery().select()), found)
            return found

    def find_events(
        self, *, artifact_ids: Sequence[int] = (), execution_ids: Sequence[int] = ()
    ) -> list[Event]:
        """Events touching any of the given artifacts or executions."""
        with self._read() as conn:
            return lineage.events_of(conn, artifact_ids=artifact_ids, execution_ids=execution_ids)

    def find_parents(self, context_id: int) -> list[Context]:
        """The parent contexts of a context."""
        with self._read() as conn:
            parent_ids = conn.execute(
                sa.select(schema.parent_contexts.c.parent_id).where(
                    schema.parent_contexts.c.child_id == context_id
                )
            ).scalars()
            return loading.load_records(conn, self._types, Kind.CONTEXT, list(parent_ids))  # type: ignore[return-value]

    def lineage(
        self,
        *,
        artifact_id: int | None = None,
        execution_id: int | None = None,
        direction: str = "both",
        depth: int = 4,
    ) -> LineageGraph:
        """The upstream and/or downstream subgraph of an artifact or execution.

        Each artifact-execution edge is one hop; `depth` bounds the hops in each direction.
        """
        with self._read() as conn:
            artifact_ids, execution_ids, events = lineage.subgraph(
                conn,
                artifact_id=artifact_id,
                execution_id=execution_id,
                direction=direction,
                depth=depth,
            )
            artifacts = loading.load_records(conn, self._types, Kind.ARTIFACT, sorted(artifact_ids))
            executions = loading.load_records(
                conn, self._types, Kind.EXECUTION, sorted(execution_ids)
            )
            return LineageGraph(
                tuple(cast(list[Artifact], artifacts)),
                tuple(cast(list[Execution], executions)),
                tuple(events),
            )

    # ---- time series -------------------------------------------------------------------

    def write_time_series(self, blocks: Sequence[SeriesBlock]) -> None:
        """Append blocks of points in one transaction."""
        rows = [block.pack() for block in blocks if len(block)]
        if rows:
            with self._write() as conn:
                # A tuning trial writes its series on every trial: on the driver's cursor.
                statement = database.driver_statement(
                    "time-series-insert", conn.dialect,
                    lambda: database.numbered_insert(schema.time_series),
                )  # fmt: skip
                statement.execute_many(conn.connection, rows)

    def read_time_series(
        self, context_id: int, *, names: Sequence[str] | None = None
    ) -> dict[str, SeriesBlock]:
        """The points of a context per metric name, each sorted by step."""
        ts = schema.time_series
        query = (
            sa.select(ts.c.name, ts.c.steps, ts.c.wall_times, ts.c["values"])
            .where(ts.c.context_id == context_id)
            .order_by(ts.c.id)
        )
        if names is not None:
            query = query.where(ts.c.name.in_(list(names)))
        with self._read() as conn:
            blocks = [SeriesBlock.unpack(context_id, *row) for row in conn.execute(query)]
        return concatenate(blocks)

    def last_steps(self, context_id: int) -> dict[str, int]:
        """The highest step logged for each metric of a context."""
        ts = schema.time_series
        query = (
            sa.select(ts.c.name, sa.func.max(ts.c.last_step))
            .where(ts.c.context_id == context_id)
            .group_by(ts.c.name)
        )
        with self._read() as conn:
            return {name: int(step) for name, step in conn.execute(query)}

    # ---- housekeeping ------------------------------------------------------------------

    def delete_contexts(self, context_ids: Sequence[int]) -> None:
        """Delete contexts with their properties, links and time series; artifacts stay."""
        if not context_ids:
            return
        with self._write() as conn:
            ids = list(context_ids)
            conn.execute(
                sa.delete(schema.time_series).where(schema.time_series.c.context_id.in_(ids))
            )
            conn.execute(sa.delete(schema.contexts).where(schema.contexts.c.id.in_(ids)))

    def counts(self) -> dict[str, int]:
        """Number of rows per table, for `ratchet store info`."""
        with self._read() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in schema.metadata.tables.items()
            }

    def revision(self) -> str | None:
        """The schema revision of the database."""
        with self._read() as conn:
            return database.current_revision(conn)


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"{what} must be a non-empty string, got {name!r}")
