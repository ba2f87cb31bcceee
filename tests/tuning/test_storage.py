"""Optuna studies in the metadata store: the storage contract, reopening, crashes, many workers.

Every test runs on SQLite and on the real PostgreSQL server (`store_url`). The
journal storage must pass Optuna's own storage test suite, as Optuna's in-memory,
RDB and journal storages do.
"""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage
from optuna.testing.pytest_storages import StorageTestCase
from optuna.trial import TrialState

from ratchet.errors import InvalidArgument, StoreError
from ratchet.metadata import Context, Kind, MetadataStore, RecordType, database
from ratchet.tuning.storage import SqlJournalBackend, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def backend(store_url: str) -> Iterator[SqlJournalBackend]:
    opened = SqlJournalBackend(store_url)
    yield opened
    opened.close()


class TestSqlJournalStorage(StorageTestCase):
    """Optuna's storage contract, run on the journal in the metadata store."""

    @pytest.fixture
    def storage(self, backend: SqlJournalBackend) -> BaseStorage:
        return JournalStorage(backend)


def _journal(url: str) -> list[tuple[int, dict[str, Any]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT seq, log FROM tuning_journal ORDER BY seq"))
            return [(seq, json.loads(log)) for seq, log in rows]
    finally:
        engine.dispose()


def _execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


# ---- the backend ---------------------------------------------------------------------------


def test_logs_are_numbered_densely_from_zero_and_read_from_any_number(
    backend: SqlJournalBackend, store_url: str
) -> None:
    backend.append_logs([{"op": 0}])
    backend.append_logs([])
    backend.append_logs([{"op": 1}, {"op": 2, "nested": {"a": [1, None]}}])
    backend.append_logs([{"op": 3, "inf": float("inf")}])
    everything = backend.read_logs(0)
    assert [log["op"] for log in everything] == [0, 1, 2, 3]
    assert everything[2]["nested"] == {"a": [1, None]}
    assert everything[3]["inf"] == float("inf")
    assert backend.read_logs(2) == everything[2:]
    assert backend.read_logs(4) == []
    assert [seq for seq, _ in _journal(store_url)] == [0, 1, 2, 3]


def test_a_log_that_is_not_json_is_refused_and_nothing_is_written(
    backend: SqlJournalBackend,
) -> None:
    backend.append_logs([{"op": 0}])
    with pytest.raises(InvalidArgument, match="JSON"):
        backend.append_logs([{"op": 1}, {"op": 2, "value": object()}])
    assert backend.read_logs(0) == [{"op": 0}]


def test_a_hole_in_the_journal_is_a_store_error_not_a_silent_misnumbering(
    backend: SqlJournalBackend, store_url: str
) -> None:
    backend.append_logs([{"op": i} for i in range(4)])
    _execute(store_url, "DELETE FROM tuning_journal WHERE seq = 2")
    assert backend.read_logs(3) == [{"op": 3}]
    with pytest.raises(StoreError, match="no log 2") as raised:
        backend.read_logs(1)
    assert "\n" not in str(raised.value)


def test_concurrent_appenders_never_share_or_skip_a_number(store_url: str) -> None:
    writers, appends = 6, 25
    backends = [SqlJournalBackend(store_url) for _ in range(writers)]
    start = threading.Barrier(writers)

    def append(writer: int) -> None:
        start.wait()
        for i in range(appends):
            backends[writer].append_logs([{"w": writer, "i": i, "part": p} for p in range(2)])

    threads = [threading.Thread(target=append, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for opened in backends:
        opened.close()
    journal = _journal(store_url)
    assert [seq for seq, _ in journal] == list(range(writers * appends * 2))
    # One call's logs stay together, and each writer's calls stay in its own order.
    for (_, first), (_, second) in zip(journal[::2], journal[1::2], strict=True):
        assert (first["w"], first["i"], first["part"]) == (second["w"], second["i"], 0)
    for writer in range(writers):
        mine = [log["i"] for _, log in journal if log["w"] == writer and log["part"] == 0]
        assert mine == list(range(appends))


def test_the_backend_travels_by_pickle_and_reopens_the_same_journal(
    backend: SqlJournalBackend,
) -> None:
    backend.append_logs([{"op": 0}])
    copy = pickle.loads(pickle.dumps(backend))
    try:
        copy.append_logs([{"op": 1}])
        assert backend.read_logs(0) == [{"op": 0}, {"op": 1}]
    finally:
        copy.close()


def test_opening_a_store_from_before_tuning_migrates_it_and_keeps_its_records(
    store_url: str,
) -> None:
    with MetadataStore(store_url) as store:
        store.put_type(RecordType(Kind.CONTEXT, "Run"))
        run = store.put_context(Context("Run", "r", custom_properties={"x": 1}))
    _execute(store_url, "DROP TABLE tuning_journal")
    _execute(store_url, "UPDATE alembic_version SET version_num = '0001'")

    optuna.create_study(storage=open_storage(store_url), study_name="after")
    with MetadataStore(store_url, migrate=False) as store:
        assert store.revision() == database.head_revision()
        assert store.get_context(run.id or 0) == run
        assert store.counts()["tuning_journal"] == 1


def test_an_unusable_url_is_a_one_line_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as raised:
        open_storage(f"sqlite:///{tmp_path / 'missing' / 'metadata.db'}")
    assert "\n" not in str(raised.value)


# ---- studies -------------------------------------------------------------------------------


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    layers = trial.suggest_int("layers", 1, 4)
    activation = trial.suggest_categorical("activation", ["relu", "tanh"])
    trial.set_user_attr("note", {"activation": activation, "layers": layers})
    for step in range(3):
        trial.report(x * x + step, step)
        if trial.number % 5 == 4 and step == 1:
            raise optuna.TrialPruned()
    if trial.number % 7 == 6:
        raise ValueError("this trial crashes")
    return x * x + layers


def test_a_study_reopened_from_a_fresh_storage_has_every_trial(store_url: str) -> None:
    study = optuna.create_study(
        storage=open_storage(store_url),
        study_name="roundtrip",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.set_user_attr("dataset", "demo")
    study.optimize(_objective, n_trials=20, catch=(ValueError,))
    states = Counter(trial.state for trial in study.trials)
    assert states == {TrialState.COMPLETE: 14, TrialState.PRUNED: 4, TrialState.FAIL: 2}

    reopened = optuna.load_study(study_name="roundtrip", storage=open_storage(store_url))
    assert reopened.trials == study.trials
    assert reopened.best_trial == study.best_trial
    assert reopened.user_attrs == {"dataset": "demo"}
    pruned = next(t for t in reopened.trials if t.state == TrialState.PRUNED)
    assert sorted(pruned.intermediate_values) == [0, 1]
    assert reopened.trials[0].user_attrs["note"]["activation"] in ("relu", "tanh")


def test_the_same_seeded_study_gives_the_same_trials_as_optunas_in_memory_storage(
    store_url: str,
) -> None:
    def run(storage: BaseStorage | None) -> list[tuple[Any, ...]]:
        study = optuna.create_study(
            storage=storage, study_name="same", sampler=optuna.samplers.TPESampler(seed=3)
        )
        study.optimize(_objective, n_trials=15, catch=(ValueError,))
        return [
            (t.number, t.state, t.params, t.values, t.intermediate_values, t.user_attrs)
            for t in study.trials
        ]

    assert run(open_storage(store_url)) == run(None)


# ---- a crashed worker ----------------------------------------------------------------------

# The third trial reports, records an attribute, then its process is killed with SIGKILL:
# nothing gets a chance to clean up.
CRASHING_WORKER = """
import os, signal, sys
import optuna
from ratchet.tuning.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    trial.report(x, step=0)
    if trial.number == 2:
        trial.set_user_attr("last_words", "killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return x

study = optuna.create_study(
    storage=open_storage(sys.argv[1]), study_name="crash",
    sampler=optuna.samplers.RandomSampler(seed=1),
)
study.optimize(objective, n_trials=5)
"""


def test_a_killed_workers_trial_stays_running_until_told_and_can_be_retried(
    store_url: str,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_WORKER, store_url], capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()

    study = optuna.load_study(study_name="crash", storage=open_storage(store_url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]
    orphan = study.trials[2]
    assert orphan.intermediate_values == {0: orphan.params["x"]}
    assert orphan.user_attrs == {"last_words": "killed"}

    # The journal has no heartbeat, so Optuna cannot tell a dead worker from a slow one.
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        optuna.storages.fail_stale_trials(study)
    assert study.trials[2].state == TrialState.RUNNING

    # The resume knows the worker is gone: it fails the trial and runs its parameters again.
    study.tell(orphan.number, state=TrialState.FAIL)
    study.enqueue_trial(orphan.params)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)

    fresh = optuna.load_study(study_name="crash", storage=open_storage(store_url))
    assert [t.state for t in fresh.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.COMPLETE,
    ]
    assert fresh.trials[3].params == orphan.params
    assert fresh.trials[2].user_attrs == {"last_words": "killed"}


def test_a_worker_presumed_dead_cannot_write_to_its_failed_trial(store_url: str) -> None:
    slow = optuna.create_study(storage=open_storage(store_url), study_name="slow")
    trial = slow.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    supervisor = optuna.load_study(study_name="slow", storage=open_storage(store_url))
    supervisor.tell(trial.number, state=TrialState.FAIL)

    with pytest.raises(UpdateFinishedTrialError):
        trial.report(0.5, step=1)
    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):
        slow.tell(trial, 0.5)
    reread = optuna.load_study(study_name="slow", storage=open_storage(store_url)).trials[0]
    assert reread.state == TrialState.FAIL
    assert reread.intermediate_values == {}


# ---- several workers on one study ----------------------------------------------------------

WORKERS = 4
TRIALS_PER_WORKER = 15
ENQUEUED_PER_WORKER = 3

# Every worker imports first, says it is ready, then waits for "go", so that creating the
# study, enqueueing, popping enqueued trials and numbering new ones really do race. Each
# evaluation appends a line to the worker's own file: the check counts evaluations there,
# not in the storage under test.
MULTI_WORKER = f"""
import json, sys, time
from pathlib import Path
import optuna
from ratchet.tuning.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, worker, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
(folder / f"ready-{{worker}}").touch()
while not (folder / "go").exists():
    time.sleep(0.002)
study = optuna.create_study(
    storage=open_storage(url), study_name="shared", load_if_exists=True,
    sampler=optuna.samplers.RandomSampler(seed=worker),
)
for i in range({ENQUEUED_PER_WORKER}):
    study.enqueue_trial({{"x": worker + i / 10}}, user_attrs={{"enqueued_by": worker}})
evaluations = folder / f"evaluations-{{worker}}.jsonl"

def objective(trial):
    x = trial.suggest_float("x", -10, 10)
    trial.set_user_attr("worker", worker)
    for step in range(3):
        trial.report(x + step, step)
    with evaluations.open("a") as out:
        out.write(json.dumps({{"number": trial.number, "x": x, "worker": worker}}) + "\\n")
    time.sleep(0.005)
    return x * x

study.optimize(objective, n_trials={TRIALS_PER_WORKER})
"""


def test_several_worker_processes_share_one_study_without_losing_or_repeating_a_trial(
    store_url: str, tmp_path: Path
) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", MULTI_WORKER, store_url, str(w), str(tmp_path)],
            stderr=subprocess.PIPE,
        )
        for w in range(WORKERS)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for worker in workers:
        _, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr.decode()

    total = WORKERS * TRIALS_PER_WORKER
    storage = open_storage(store_url)
    assert [s.study_name for s in storage.get_all_studies()] == ["shared"]
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert [t.number for t in trials] == list(range(total))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert Counter(t.user_attrs["worker"] for t in trials) == dict.fromkeys(
        range(WORKERS), TRIALS_PER_WORKER
    )

    evaluations = [
        json.loads(line)
        for path in tmp_path.glob("evaluations-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert sorted(e["number"] for e in evaluations) == list(range(total))
    for evaluation in evaluations:
        trial = trials[evaluation["number"]]
        assert trial.params == {"x": evaluation["x"]}
        assert trial.user_attrs["worker"] == evaluation["worker"]
        assert trial.intermediate_values == {s: evaluation["x"] + s for s in range(3)}
    # Every enqueued trial ran exactly once, whichever worker popped it.
    enqueued = [t for t in trials if "enqueued_by" in t.user_attrs]
    assert sorted(t.params["x"] for t in enqueued) == sorted(
        w + i / 10 for w in range(WORKERS) for i in range(ENQUEUED_PER_WORKER)
    )
    assert len({e["x"] for e in evaluations}) == total
    journal = _journal(store_url)
    assert [seq for seq, _ in journal] == list(range(len(journal)))
