"""The controller: passes per new batch, resume from the store after a crash, schedules.

The passes here are a stand-in that reads the batch and records a dataset, so
that the controller's own work (what is new, what is recorded, when it polls)
is tested in seconds; the real pass is tested in `test_passes.py` and through
the CLI in `tests/cli/test_formalize_cli.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from ratchet.config import Config, load_config
from ratchet.datasets import DATASET, DATASET_TYPES
from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.formalize.controller import PASS, Cron, Every, passed_batches, watch
from ratchet.formalize.passes import PassResult, Settings
from ratchet.formalize.policy import Action, Decision
from ratchet.formalize.sources import Batch, Source, SqlSource
from ratchet.metadata import Artifact, MetadataStore

SETTINGS = Settings(name="trips", label="tip")


class Stop(Exception):
    """Ends a controller that would otherwise poll forever."""


@dataclass
class FakePass:
    """Reads the batch's ids as a pass reads its rows; crashes on call `crash_on`, and
    raises `Stop` on the calls after `stop_after` (having read the batch)."""

    stop_after: int | None = None
    crash_on: int | None = None
    seen: list[list[int]] = field(default_factory=list)

    def __call__(
        self, config: Config, source: str, settings: Settings, *, say: object
    ) -> PassResult:
        call = len(self.seen) + 1
        if call == self.crash_on:
            raise RuntimeError("the pass crashed")
        self.seen.append(pq.read_table(source).column("trip").to_pylist())
        if self.stop_after is not None and call > self.stop_after:
            raise Stop
        with MetadataStore.from_config(config) as store:
            store.put_type(DATASET_TYPES[0])
        dataset = Artifact(DATASET, uri=source, name=f"{settings.name}@{Path(source).stem}")
        return PassResult(dataset, Decision(Action.REUSE, ("stand-in",), {}))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'source.db'}"
    url: str = request.getfixturevalue("pg_url")  # a schema of its own, dropped after
    return url


def make_table(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE trips (id INTEGER PRIMARY KEY, trip INTEGER, tip VARCHAR(3))"
        )
    return engine


def insert(engine: sa.Engine, ids: range) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO trips VALUES (:id, :id, :tip)"),
            [{"id": i, "tip": "yes" if i % 2 else "no"} for i in ids],
        )


def sql_source(url: str, config: Config) -> SqlSource:
    return SqlSource(
        url, "SELECT * FROM trips", cursor_column="id", folder=config.home / "incoming" / "trips"
    )


def test_a_crashed_controller_resumes_from_the_recorded_cursor(
    database: str, tmp_path: Path
) -> None:
    config = load_config(home=tmp_path / "home")
    engine = make_table(database)
    try:
        insert(engine, range(1, 4))
        first = FakePass()
        watch(config, sql_source(database, config), SETTINGS, once=True, run=first)
        assert first.seen == [[1, 2, 3]]
        insert(engine, range(4, 6))
        with pytest.raises(RuntimeError, match="crashed"):
            watch(
                config, sql_source(database, config), SETTINGS, once=True, run=FakePass(crash_on=1)
            )
        insert(engine, range(6, 7))
        resumed = FakePass()  # a new controller on the same store: nothing kept in memory
        watch(config, sql_source(database, config), SETTINGS, once=True, run=resumed)
        assert resumed.seen == [[4, 5, 6]]
        idle = FakePass()
        assert watch(config, sql_source(database, config), SETTINGS, once=True, run=idle) == []
        assert idle.seen == []
    finally:
        engine.dispose()
    with MetadataStore.from_config(config, create=False) as store:
        passed = passed_batches(store, "trips")
        [execution, _] = store.find_executions(type=PASS)
    assert [b.cursor for b in passed] == ["int:3", "int:6"]
    assert execution.properties["source"] == sql_source(database, config).key
    assert execution.custom_properties["model"] == "trips"


def test_watch_keeps_polling_and_takes_only_the_rows_that_arrived(tmp_path: Path) -> None:
    config = load_config(home=tmp_path / "home")
    engine = make_table(f"sqlite:///{tmp_path / 'source.db'}")
    insert(engine, range(1, 3))
    arrivals = iter([range(3, 5), range(5, 6)])

    def arrive(line: str) -> None:
        rows = next(arrivals, None) if line.startswith("new data") else None
        if rows is not None:
            insert(engine, rows)  # rows land while a pass runs

    fake = FakePass(stop_after=2)
    source = sql_source(f"sqlite:///{tmp_path / 'source.db'}", config)
    with pytest.raises(Stop):
        watch(config, source, SETTINGS, schedule=Every(0.01), say=arrive, run=fake)
    engine.dispose()
    assert fake.seen == [[1, 2], [3, 4], [5]]


def test_files_are_passed_once_each(tmp_path: Path) -> None:
    config = load_config(home=tmp_path / "home")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for month, rows in (("01", [1, 2]), ("02", [3])):
        pq.write_table(trip_table(rows), incoming / f"2026-{month}.parquet")
    fake = FakePass()
    watch(config, str(incoming), SETTINGS, once=True, run=fake)
    pq.write_table(trip_table([4]), incoming / "2026-03.parquet")
    watch(config, str(incoming), SETTINGS, once=True, run=fake)
    assert fake.seen == [[1, 2], [3], [4]]


def trip_table(ids: list[int]) -> pa.Table:
    return pa.table({"trip": ids})


@dataclass
class FlakySource(Source):
    """A source whose second poll fails, as a database restarting would."""

    polls: int = 0

    @property
    def key(self) -> str:
        return "flaky"

    def new_batches(self, passed: Sequence[Batch]) -> list[Batch]:
        self.polls += 1
        if self.polls == 2:
            raise FailedPrecondition("cannot connect to the database")
        path = Path(f"batch-{self.polls}.parquet")
        pq.write_table(trip_table([self.polls]), path)
        return [Batch(path, self.key)]


def test_a_later_poll_that_fails_is_retried_at_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(home=tmp_path / "home")
    fake = FakePass(stop_after=1)
    with caplog.at_level(logging.WARNING), pytest.raises(Stop):
        watch(config, FlakySource(), SETTINGS, schedule=Every(0.01), run=fake)
    assert fake.seen == [[1], [3]]
    assert "cannot connect to the database" in caplog.text


def test_a_failing_first_poll_is_reported_at_once(tmp_path: Path) -> None:
    config = load_config(home=tmp_path / "home")
    make_table(f"sqlite:///{tmp_path / 'source.db'}").dispose()
    source = SqlSource(
        f"sqlite:///{tmp_path / 'source.db'}",
        "SELECT * FROM trips",
        cursor_column="trip_id",
        folder=tmp_path,
    )
    with pytest.raises(InvalidArgument, match="no column 'trip_id'"):
        watch(config, source, SETTINGS, schedule=Every(3600), run=FakePass())


def test_cron_names_the_next_time_in_utc() -> None:
    every_five = Cron("*/5 * * * *")
    noon = datetime(2026, 3, 1, 12, 3, 10, tzinfo=UTC)
    assert every_five.next_run(noon) == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    assert every_five.next_run(datetime(2026, 3, 1, 12, 5, tzinfo=UTC)) == datetime(
        2026, 3, 1, 12, 10, tzinfo=UTC
    )
    nightly = Cron("0 2 * * *")
    paris = timezone(timedelta(hours=1))
    assert nightly.next_run(datetime(2026, 3, 1, 2, 30, tzinfo=paris)) == datetime(
        2026, 3, 1, 2, tzinfo=UTC
    )  # 01:30 in UTC
    assert nightly.next_run(datetime(2026, 3, 1, 3, 30, tzinfo=paris)) == datetime(
        2026, 3, 2, 2, tzinfo=UTC
    )
    assert Cron("*/30 * * * * *").next_run(noon) == datetime(2026, 3, 1, 12, 3, 30, tzinfo=UTC)
    assert Every(90).next_run(noon) == noon + timedelta(seconds=90)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("*/5 * *", "Wrong number of fields"),
        ("61 * * * *", "Bad minute"),
        ("0 0 30 2 *", "Bad day"),
    ],
)
def test_an_invalid_cron_expression_fails_when_given(expression: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=f"invalid cron expression .*{reason}"):
        Cron(expression)


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(InvalidArgument, match="interval must be positive"):
        Every(0)
