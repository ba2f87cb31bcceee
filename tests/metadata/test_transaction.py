"""`MetadataStore.transaction()`: several writes committed together, or none of them.

Every test runs on SQLite and PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

import pytest

from ratchet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ratchet.metadata import (
    Artifact,
    Context,
    Execution,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.series import SeriesBlock

TYPES = (
    RecordType(Kind.CONTEXT, "Experiment"),
    RecordType(Kind.CONTEXT, "Run", {"seed": PropertyType.INT}),
    RecordType(Kind.EXECUTION, "Train", {"epochs": PropertyType.INT}),
    RecordType(Kind.ARTIFACT, "Model"),
)


class Boom(Exception):
    pass


@pytest.fixture
def typed(store: MetadataStore) -> MetadataStore:
    for record_type in TYPES:
        store.put_type(record_type)
    return store


def _record_run(tx: MetadataStore, experiment: Context, name: str) -> tuple[Context, int]:
    """What a tuning trial writes: a run under the experiment, its series, its execution."""
    run = tx.put_context(Context("Run", name, properties={"seed": 1}))
    assert run.id is not None and experiment.id is not None
    tx.put_parent_context(experiment.id, run.id)
    tx.write_time_series([SeriesBlock.of(run.id, "loss", [0, 1], [1.0, 2.0], [0.5, 0.25])])
    written = tx.put_execution(
        Execution("Train", properties={"epochs": 2}),
        outputs={"model": Artifact("Model", uri="file:///m")},
        contexts=[run],
    )
    assert written.execution.id is not None
    return run, written.execution.id


def test_the_writes_commit_together_at_the_end_of_the_block(typed: MetadataStore) -> None:
    experiment = typed.put_context(Context("Experiment", "exp"))
    with typed.transaction() as tx:
        run, execution_id = _record_run(tx, experiment, "r1")
        # The view reads what it wrote; the store, on other connections, not yet.
        assert tx.get_context(run.id or 0) == run
        assert typed.find_context("Run", "r1") is None
        assert typed.find_executions(type="Train") == []
    assert typed.get_context(run.id or 0) == run
    assert typed.find_parents(run.id or 0) == [experiment]
    assert typed.read_time_series(run.id or 0)["loss"].values.tolist() == [0.5, 0.25]
    assert [e.id for e in typed.find_executions(context=run.id)] == [execution_id]
    assert len(typed.find_artifacts(context=run.id, type="Model")) == 1


def test_an_error_in_the_block_leaves_nothing_written(typed: MetadataStore) -> None:
    experiment = typed.put_context(Context("Experiment", "exp"))
    before = typed.counts()
    with pytest.raises(Boom), typed.transaction() as tx:
        _record_run(tx, experiment, "r1")
        raise Boom
    assert typed.counts() == before
    # The store is usable afterwards, and the same records can be written again.
    with typed.transaction() as tx:
        run, _ = _record_run(tx, experiment, "r1")
    assert typed.find_context("Run", "r1") == run


def test_a_failing_write_in_the_block_leaves_nothing_written(typed: MetadataStore) -> None:
    experiment = typed.put_context(Context("Experiment", "exp"))
    typed.put_context(Context("Run", "taken"))
    before = typed.counts()
    with pytest.raises(AlreadyExists), typed.transaction() as tx:
        _record_run(tx, experiment, "r1")
        tx.put_context(Context("Run", "taken"))
    assert typed.counts() == before


def test_a_failed_write_that_is_caught_still_keeps_nothing(typed: MetadataStore) -> None:
    experiment = typed.put_context(Context("Experiment", "exp"))
    typed.put_context(Context("Run", "taken"))
    before = typed.counts()
    with pytest.raises(FailedPrecondition, match="AlreadyExists"), typed.transaction() as tx:
        _record_run(tx, experiment, "r1")
        with pytest.raises(AlreadyExists):
            # Half of this execution is written before its context clashes.
            tx.put_execution(Execution("Train"), contexts=[Context("Run", "taken")])
        with pytest.raises(FailedPrecondition, match="nothing was kept"):
            tx.put_context(Context("Run", "r2"))
    assert typed.counts() == before


def test_invalid_input_refused_before_writing_does_not_fail_the_transaction(
    typed: MetadataStore,
) -> None:
    experiment = typed.put_context(Context("Experiment", "exp"))
    with typed.transaction() as tx:
        with pytest.raises(InvalidArgument):
            tx.put_context(Context("Run", ""))
        run, _ = _record_run(tx, experiment, "r1")
    assert typed.find_context("Run", "r1") == run


def test_a_type_registered_in_a_rolled_back_block_is_forgotten(typed: MetadataStore) -> None:
    late = RecordType(Kind.ARTIFACT, "Late", {"size": PropertyType.INT})
    with pytest.raises(Boom), typed.transaction() as tx:
        tx.put_type(late)
        tx.put_artifact(Artifact("Late", properties={"size": 1}))
        raise Boom
    with pytest.raises(NotFound, match="put_type"):
        typed.put_artifact(Artifact("Late"))
    typed.put_type(late)
    assert typed.put_artifact(Artifact("Late", properties={"size": 2})).id is not None


def test_a_transaction_inside_a_transaction_joins_it(typed: MetadataStore) -> None:
    before = typed.counts()
    with pytest.raises(Boom), typed.transaction() as tx:
        with tx.transaction() as inner:
            assert inner is tx
            inner.put_context(Context("Experiment", "inner"))
        assert typed.find_context("Experiment", "inner") is None  # not committed yet
        raise Boom
    assert typed.counts() == before


def test_closing_the_view_leaves_the_store_open(typed: MetadataStore) -> None:
    with typed.transaction() as tx, tx:
        tx.put_context(Context("Experiment", "e"))
    assert typed.find_context("Experiment", "e") is not None
