"""`database.DriverStatement` and `driver_transaction`: statements run on the driver's connection.

Every test runs on SQLite and PostgreSQL (`store_url`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ratchet.errors import AlreadyExists, StoreError
from ratchet.metadata import MetadataStore, database, schema

TYPES = schema.types
INSERT = sa.insert(TYPES).values(kind=sa.bindparam("kind"), name=sa.bindparam("name"))
SELECT = sa.select(TYPES.c.name).where(TYPES.c.kind == sa.bindparam("kind")).order_by(TYPES.c.name)


class Boom(Exception):
    pass


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    MetadataStore(store_url).close()  # the schema
    opened = database.create_engine(store_url)
    yield opened
    opened.dispose()


def _names(engine: sa.Engine, url: str) -> list[str]:
    select = database.DriverStatement(SELECT, engine.dialect)
    with database.driver_transaction(engine, url, write=False) as connection:
        return [name for (name,) in select.fetch_all(connection, {"kind": "artifact"})]


def test_statements_run_with_their_parameters_and_commit(engine: sa.Engine, store_url: str) -> None:
    insert = database.DriverStatement(INSERT, engine.dialect)
    with database.driver_transaction(engine, store_url, write=True) as connection:
        insert.execute_many(connection, [{"kind": "artifact", "name": n} for n in ("b", "a")])
        insert.execute_many(connection, [{"kind": "context", "name": "c"}])
    assert _names(engine, store_url) == ["a", "b"]


def test_a_block_that_raises_keeps_nothing(engine: sa.Engine, store_url: str) -> None:
    insert = database.DriverStatement(INSERT, engine.dialect)
    with pytest.raises(Boom), database.driver_transaction(engine, store_url, write=True) as conn:
        insert.execute_many(conn, [{"kind": "artifact", "name": "a"}])
        raise Boom
    assert _names(engine, store_url) == []


def test_driver_errors_are_translated_and_keep_nothing(engine: sa.Engine, store_url: str) -> None:
    insert = database.DriverStatement(INSERT, engine.dialect)
    rows = [{"kind": "artifact", "name": "a"}, {"kind": "artifact", "name": "a"}]
    refused = pytest.raises(AlreadyExists, match="conflicts with an existing record")
    with refused as raised, database.driver_transaction(engine, store_url, write=True) as conn:
        insert.execute_many(conn, rows[:1])
        insert.execute_many(conn, rows)  # the unique (kind, name) refuses it
    assert "\n" not in str(raised.value)
    assert _names(engine, store_url) == []
    missing = database.DriverStatement(
        sa.select(sa.text("1")).select_from(sa.table("nope")), engine.dialect
    )
    reading = database.driver_transaction(engine, store_url, write=False)
    with pytest.raises(StoreError, match="nope"), reading as connection:
        missing.fetch_all(connection, {})


def test_a_statement_is_compiled_once_for_every_engine_of_a_kind(store_url: str) -> None:
    MetadataStore(store_url).close()
    built: list[int] = []

    def build() -> sa.Select[tuple[str]]:
        built.append(1)
        return SELECT

    engines = [database.create_engine(store_url) for _ in range(3)]
    try:
        statements = []
        for engine in engines:
            with engine.connect() as conn:  # the dialect learns the server's version
                statement = database.driver_statement(("test", store_url), conn.dialect, build)
                statements.append(statement)
        assert len(built) == 1 and all(s is statements[0] for s in statements)
        # Compiled on the first engine, it runs on the third as that engine's own would.
        with engines[2].begin() as conn:
            conn.execute(INSERT, [{"kind": 0, "name": "b"}, {"kind": 0, "name": "a"}])
            expected = [tuple(row) for row in conn.execute(SELECT, {"kind": 0})]
        with database.driver_transaction(engines[2], store_url, write=False) as connection:
            assert statements[0].fetch_all(connection, {"kind": 0}) == expected
        assert [name for (name,) in expected] == ["a", "b"]
    finally:
        for engine in engines:
            engine.dispose()
