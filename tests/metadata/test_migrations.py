"""Opening a store: migrations build `schema.metadata` exactly, and bad stores fail in one line."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ratchet.config import load_config
from ratchet.errors import NotFound, StoreError, StoreVersionError
from ratchet.metadata import Context, Kind, MetadataStore, RecordType, database, schema


def _execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema_module(store_url: str) -> None:
    with MetadataStore(store_url) as store:
        assert store.revision() == database.head_revision()
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, schema.metadata)
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diffs == []
    assert tables == set(schema.metadata.tables) | {"alembic_version"}


def test_reopening_a_migrated_store_changes_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MetadataStore(store_url) as store:
        store.put_type(RecordType(Kind.CONTEXT, "Run"))
        run = store.put_context(Context("Run", "r", custom_properties={"x": 1}))
        counts = store.counts()

    def no_upgrade(*args: object, **kwargs: object) -> None:
        raise AssertionError("a store at head was migrated again")

    monkeypatch.setattr(database.command, "upgrade", no_upgrade)
    for migrate in (True, False):
        with MetadataStore(store_url, migrate=migrate) as store:
            assert store.revision() == database.head_revision()
            assert store.counts() == counts
            assert store.get_context(run.id or 0) == run


def test_a_store_from_a_newer_ratchet_is_refused(store_url: str) -> None:
    MetadataStore(store_url).close()
    _execute(store_url, "UPDATE alembic_version SET version_num = '9999'")
    for migrate in (True, False):
        with pytest.raises(StoreVersionError, match="upgrade ratchet") as raised:
            MetadataStore(store_url, migrate=migrate)
        assert "9999" in str(raised.value)
        assert "\n" not in str(raised.value)
    _execute(store_url, f"UPDATE alembic_version SET version_num = '{database.head_revision()}'")
    MetadataStore(store_url).close()


def test_a_file_that_is_not_a_database_is_a_one_line_store_error(home: Path) -> None:
    home.mkdir()
    garbage = random.Random(0).randbytes(8192)
    (home / "metadata.db").write_bytes(garbage)
    with pytest.raises(StoreError, match="not a readable metadata store") as raised:
        MetadataStore.from_config(load_config())
    assert "\n" not in str(raised.value)
    assert (home / "metadata.db").read_bytes() == garbage


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "nosuchdialect://host/db",
        "postgresql+psycopg://postgres@127.0.0.1:1/ratchet?connect_timeout=2",
    ],
)
def test_unusable_urls_are_one_line_store_errors(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        MetadataStore(url)
    assert "\n" not in str(raised.value)


def test_a_sqlite_file_in_a_missing_folder_is_a_store_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "metadata.db"
    with pytest.raises(StoreError, match="unable to open") as raised:
        MetadataStore(f"sqlite:///{missing}")
    assert "\n" not in str(raised.value)
    assert not missing.parent.exists()


def test_open_without_create_on_a_missing_home_creates_nothing(home: Path) -> None:
    with pytest.raises(NotFound, match="RATCHET_HOME"):
        MetadataStore.from_config(load_config(), create=False)
    assert not home.exists()
    home.mkdir()
    with pytest.raises(NotFound, match="no metadata store"):
        MetadataStore.from_config(load_config(), create=False)
    assert list(home.iterdir()) == []


def test_open_creates_the_home_and_reopens_it(home: Path) -> None:
    with MetadataStore.from_config(load_config()) as store:
        store.put_type(RecordType(Kind.CONTEXT, "Run"))
        store.put_context(Context("Run", "r"))
    assert (home / "metadata.db").is_file()
    with MetadataStore.from_config(load_config(), create=False) as store:
        assert store.find_context("Run", "r") is not None


def test_a_home_under_a_regular_file_is_a_store_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = home.parent / "file"
    blocker.write_text("not a folder")
    for path in (blocker / "home", blocker):
        monkeypatch.setenv("RATCHET_HOME", str(path))
        with pytest.raises(StoreError) as raised:
            MetadataStore.from_config(load_config())
        assert "\n" not in str(raised.value)
        assert str(path) in str(raised.value)
    assert blocker.read_text() == "not a folder"
