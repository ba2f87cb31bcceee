"""Shared fixtures: every store test runs against SQLite and the real PostgreSQL server.

Each PostgreSQL test gets a schema of its own, dropped afterwards. Locally a
missing server skips those tests with a reason; in CI (`CI` set) it fails them,
so the PostgreSQL half of the contract never goes quietly untested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ratchet.metadata import MetadataStore

os.environ.setdefault("DO_NOT_TRACK", "1")

PG_SERVER = os.environ.get(
    "RATCHET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_unavailable() -> str | None:
    try:
        engine = sa.create_engine(PG_SERVER)
        with engine.connect():
            pass
        engine.dispose()
    except sa.exc.OperationalError as e:
        return str(e.orig).splitlines()[0] if e.orig else str(e)
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    problem = _pg_unavailable()
    if problem is not None:
        message = f"PostgreSQL at {PG_SERVER} is not reachable: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return PG_SERVER


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema of its own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{pg_server}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    with MetadataStore(store_url) as opened:
        yield opened


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated RATCHET_HOME, with no ratchet.toml or RATCHET_* variable leaking in."""
    for name in list(os.environ):
        if name.startswith("RATCHET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "home"
    monkeypatch.setenv("RATCHET_HOME", str(path))
    return path
