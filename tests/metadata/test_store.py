"""Contract tests for `MetadataStore`: types, records, put_execution, find, time series, deletion.

Every test gets its store from the `store` fixture, so each runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ratchet.errors import AlreadyExists, InvalidArgument, NotFound, RatchetError
from ratchet.metadata import (
    Artifact,
    ArtifactState,
    Context,
    EventType,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.series import SeriesBlock

DATASET = RecordType(
    Kind.ARTIFACT, "Dataset", {"rows": PropertyType.INT, "split": PropertyType.STRING}
)
MODEL = RecordType(
    Kind.ARTIFACT,
    "Model",
    {
        "accuracy": PropertyType.DOUBLE,
        "final": PropertyType.BOOL,
        "config": PropertyType.STRUCT,
    },
)
TRAIN = RecordType(Kind.EXECUTION, "Train", {"epochs": PropertyType.INT, "lr": PropertyType.DOUBLE})
EXPERIMENT = RecordType(Kind.CONTEXT, "Experiment", {"owner": PropertyType.STRING})
RUN = RecordType(Kind.CONTEXT, "Run", {"seed": PropertyType.INT})


@pytest.fixture
def typed(store: MetadataStore) -> MetadataStore:
    for record_type in (DATASET, MODEL, TRAIN, EXPERIMENT, RUN):
        store.put_type(record_type)
    return store


# ---- types ---------------------------------------------------------------------------------


def test_put_type_is_idempotent(store: MetadataStore) -> None:
    first = store.put_type(DATASET)
    second = store.put_type(DATASET)
    assert first == second
    assert first.id is not None
    assert dict(first.properties) == dict(DATASET.properties)
    assert store.get_type(Kind.ARTIFACT, "Dataset") == first
    assert [t.name for t in store.find_types(Kind.ARTIFACT)] == ["Dataset"]


def test_put_type_may_add_properties(store: MetadataStore) -> None:
    store.put_type(RecordType(Kind.ARTIFACT, "Dataset", {"rows": PropertyType.INT}))
    grown = store.put_type(RecordType(Kind.ARTIFACT, "Dataset", {"split": PropertyType.STRING}))
    assert dict(grown.properties) == {"rows": PropertyType.INT, "split": PropertyType.STRING}
    assert store.get_type(Kind.ARTIFACT, "Dataset") == grown


def test_changing_a_declared_property_type_is_already_exists(store: MetadataStore) -> None:
    store.put_type(DATASET)
    with pytest.raises(AlreadyExists, match="rows"):
        store.put_type(RecordType(Kind.ARTIFACT, "Dataset", {"rows": PropertyType.STRING}))
    # The failed call changed nothing, not even a property it would also have added.
    with pytest.raises(AlreadyExists):
        store.put_type(
            RecordType(
                Kind.ARTIFACT, "Dataset", {"extra": PropertyType.INT, "rows": PropertyType.DOUBLE}
            )
        )
    assert dict(store.get_type(Kind.ARTIFACT, "Dataset").properties) == dict(DATASET.properties)


def test_types_of_different_kinds_are_separate(store: MetadataStore) -> None:
    artifact_type = store.put_type(RecordType(Kind.ARTIFACT, "Thing", {"a": PropertyType.INT}))
    context_type = store.put_type(RecordType(Kind.CONTEXT, "Thing", {"a": PropertyType.STRING}))
    assert artifact_type.id != context_type.id
    assert store.get_type(Kind.CONTEXT, "Thing").properties == {"a": PropertyType.STRING}
    assert [t.kind for t in store.find_types()] == [Kind.ARTIFACT, Kind.CONTEXT]


@pytest.mark.parametrize(
    "bad",
    [
        RecordType(Kind.ARTIFACT, ""),
        RecordType(Kind.ARTIFACT, "   "),
        RecordType(Kind.ARTIFACT, "Dataset", {"rows": "float"}),  # type: ignore[dict-item]
    ],
)
def test_malformed_types_are_invalid(store: MetadataStore, bad: RecordType) -> None:
    with pytest.raises(InvalidArgument):
        store.put_type(bad)
    assert store.find_types() == []


def test_get_type_of_unknown_name_is_not_found(store: MetadataStore) -> None:
    with pytest.raises(NotFound, match="put_type"):
        store.get_type(Kind.ARTIFACT, "Nope")


def test_records_of_unknown_types_are_not_found(store: MetadataStore) -> None:
    before = store.counts()
    with pytest.raises(NotFound):
        store.put_artifact(Artifact("Nope"))
    with pytest.raises(NotFound):
        store.put_execution(Execution("Nope"))
    with pytest.raises(NotFound):
        store.put_context(Context("Nope", "c"))
    assert store.counts() == before


def test_declared_property_of_the_wrong_type_is_invalid(typed: MetadataStore) -> None:
    before = typed.counts()
    for wrong in ({"rows": "ten"}, {"rows": 1.5}, {"rows": True}, {"split": 3}):
        with pytest.raises(InvalidArgument):
            typed.put_artifact(Artifact("Dataset", properties=wrong))
    with pytest.raises(InvalidArgument):
        typed.put_artifact(Artifact("Model", properties={"final": 1}))
    with pytest.raises(InvalidArgument):
        typed.put_artifact(Artifact("Model", properties={"config": "not a struct"}))
    assert typed.counts() == before


def test_int_for_a_declared_double_is_stored_as_float(typed: MetadataStore) -> None:
    model = typed.put_artifact(Artifact("Model", properties={"accuracy": 1}))
    stored = typed.get_artifact(model.id or 0).properties["accuracy"]
    assert stored == 1.0
    assert type(stored) is float


def test_undeclared_property_is_invalid_but_custom_properties_are_free(
    typed: MetadataStore,
) -> None:
    with pytest.raises(InvalidArgument, match="custom_properties"):
        typed.put_artifact(Artifact("Dataset", properties={"colour": "red"}))
    free = typed.put_artifact(
        Artifact("Dataset", custom_properties={"colour": "red", "rows": "many"})
    )
    assert typed.get_artifact(free.id or 0).custom_properties == {"colour": "red", "rows": "many"}


VALUES: dict[str, object] = {
    "int": 7,
    "zero": 0,
    "negative": -(2**63),
    "largest": 2**63 - 1,
    "true": True,
    "false": False,
    "float": 7.0,
    "fraction": 0.1,
    "tiny": 5e-324,
    "infinite": math.inf,
    "minus_infinite": -math.inf,
    "string": "7",
    "empty": "",
    "unicode": "naïve ✓ 模型",
    "dict": {"b": [1, 2.5, "x", None, True], "a": {"nested": False}},
    "list": [1, "one", 1.0, False, {"k": None}],
    "empty_list": [],
}


def test_property_values_round_trip_with_their_exact_types(typed: MetadataStore) -> None:
    declared = {"accuracy": 0.25, "final": False, "config": {"layers": [64, 32], "act": "relu"}}
    written = typed.put_artifact(
        Artifact("Model", properties=declared, custom_properties=VALUES)  # type: ignore[arg-type]
    )
    for read in (written, typed.get_artifact(written.id or 0)):
        assert dict(read.properties) == declared
        assert dict(read.custom_properties) == VALUES
        for name, value in VALUES.items():
            assert type(read.custom_properties[name]) is type(value), name
        assert type(read.properties["final"]) is bool


def test_nan_doubles_round_trip_as_nan(typed: MetadataStore) -> None:
    written = typed.put_artifact(
        Artifact("Model", properties={"accuracy": math.nan}, custom_properties={"loss": math.nan})
    )
    read = typed.get_artifact(written.id or 0)
    for value in (read.properties["accuracy"], read.custom_properties["loss"]):
        assert isinstance(value, float)
        assert math.isnan(value)


@pytest.mark.parametrize(
    "value",
    [None, b"bytes", {"x": math.nan}, {1, 2}, 2**63, -(2**63) - 1, {"x": object()}],
    ids=["none", "bytes", "nan-in-struct", "set", "int-too-large", "int-too-small", "object"],
)
def test_unstorable_values_are_invalid(typed: MetadataStore, value: object) -> None:
    before = typed.counts()
    with pytest.raises(InvalidArgument):
        typed.put_artifact(Artifact("Dataset", custom_properties={"v": value}))  # type: ignore[dict-item]
    assert typed.counts() == before


def test_a_type_grown_by_another_store_is_seen(store_url: str, typed: MetadataStore) -> None:
    typed.put_artifact(Artifact("Dataset", properties={"rows": 1}))  # caches the type
    with MetadataStore(store_url) as other:
        other.put_type(RecordType(Kind.ARTIFACT, "Dataset", {"owner": PropertyType.STRING}))
        other.put_type(RecordType(Kind.ARTIFACT, "Fresh"))
    grown = typed.put_artifact(Artifact("Dataset", properties={"rows": 2, "owner": "me"}))
    assert typed.get_artifact(grown.id or 0).properties == {"rows": 2, "owner": "me"}
    assert typed.put_artifact(Artifact("Fresh")).type == "Fresh"
    assert "owner" in typed.get_type(Kind.ARTIFACT, "Dataset").properties


def test_redeclaring_a_property_another_store_declared_is_idempotent(
    store_url: str, store: MetadataStore
) -> None:
    store.put_type(RecordType(Kind.CONTEXT, "Run"))  # caches the type without properties
    with MetadataStore(store_url) as other:
        other.put_type(RecordType(Kind.CONTEXT, "Run", {"seed": PropertyType.INT}))
    same = store.put_type(RecordType(Kind.CONTEXT, "Run", {"seed": PropertyType.INT}))
    assert same.properties == {"seed": PropertyType.INT}
    with pytest.raises(AlreadyExists, match="seed"):
        store.put_type(RecordType(Kind.CONTEXT, "Run", {"seed": PropertyType.STRING}))
    assert store.get_type(Kind.CONTEXT, "Run") == same


# ---- artifacts, executions, contexts -------------------------------------------------------


def test_inserts_return_ids_and_times(typed: MetadataStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    records = [
        typed.put_artifact(Artifact("Dataset", uri="file:///d", properties={"rows": 3})),
        typed.put_artifact(Artifact("Dataset", uri="file:///e")),
        typed.put_execution(Execution("Train")).execution,
        typed.put_context(Context("Run", "r1")),
    ]
    after = datetime.now(UTC) + timedelta(seconds=1)
    for record in records:
        assert isinstance(record.id, int)
        assert record.create_time is not None
        assert record.create_time.tzinfo is not None
        assert before <= record.create_time <= after
        assert record.update_time == record.create_time
    assert records[0].id != records[1].id
    assert typed.get_artifact(records[0].id or 0) == records[0]
    assert typed.get_execution(records[2].id or 0) == records[2]
    assert typed.get_context(records[3].id or 0) == records[3]


def test_update_by_id_replaces_properties_and_keeps_create_time(typed: MetadataStore) -> None:
    first = typed.put_artifact(
        Artifact(
            "Dataset",
            uri="file:///a",
            properties={"rows": 1, "split": "train"},
            custom_properties={"note": "x"},
        )
    )
    second = typed.put_artifact(
        dataclasses.replace(
            first,
            uri="file:///b",
            state=ArtifactState.DELETED,
            properties={"rows": 2},
            custom_properties={},
        )
    )
    assert second.id == first.id
    assert second.properties == {"rows": 2}
    assert second.custom_properties == {}
    assert (second.uri, second.state) == ("file:///b", ArtifactState.DELETED)
    assert second.create_time == first.create_time
    assert second.update_time is not None and first.update_time is not None
    assert second.update_time >= first.update_time
    assert typed.get_artifact(first.id or 0) == second
    assert typed.counts()["artifacts"] == 1


def test_update_of_execution_and_context(typed: MetadataStore) -> None:
    started = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    execution = typed.put_execution(
        Execution("Train", name="t", properties={"epochs": 1})
    ).execution
    finished = typed.put_execution(
        dataclasses.replace(
            execution,
            state=ExecutionState.COMPLETE,
            start_time=started,
            end_time=started + timedelta(minutes=5),
            properties={"lr": 0.5},
        )
    ).execution
    read = typed.get_execution(execution.id or 0)
    assert read == finished
    assert read.state == ExecutionState.COMPLETE
    assert read.start_time == started
    assert read.end_time == started + timedelta(minutes=5)
    assert read.properties == {"lr": 0.5}

    context = typed.put_context(Context("Run", "r", properties={"seed": 1}))
    renamed = typed.put_context(dataclasses.replace(context, name="r2", properties={}))
    assert typed.get_context(context.id or 0) == renamed
    assert renamed.name == "r2"
    assert renamed.properties == {}


def test_set_properties_changes_only_the_ones_given(typed: MetadataStore) -> None:
    run = typed.put_context(
        Context("Run", "r", properties={"seed": 1}, custom_properties={"a": 1, "b": 2})
    )
    typed.set_properties(Kind.CONTEXT, run.id or 0, custom_properties={"b": "two", "c": 3.0})
    read = typed.get_context(run.id or 0)
    assert read.properties == {"seed": 1}
    assert read.custom_properties == {"a": 1, "b": "two", "c": 3.0}
    with pytest.raises(InvalidArgument):
        typed.set_properties(Kind.CONTEXT, run.id or 0, properties={"seed": "one"})
    with pytest.raises(NotFound):
        typed.set_properties(Kind.CONTEXT, 10**6, custom_properties={"a": 1})
    assert typed.get_context(run.id or 0).properties == {"seed": 1}


def test_changing_the_type_of_a_stored_record_is_invalid(typed: MetadataStore) -> None:
    dataset = typed.put_artifact(Artifact("Dataset", properties={"rows": 1}))
    with pytest.raises(InvalidArgument, match="Dataset"):
        typed.put_artifact(dataclasses.replace(dataset, type="Model", properties={}))
    typed.put_type(RecordType(Kind.EXECUTION, "Evaluate"))
    execution = typed.put_execution(Execution("Train")).execution
    with pytest.raises(InvalidArgument):
        typed.put_execution(dataclasses.replace(execution, type="Evaluate"))
    run = typed.put_context(Context("Run", "r"))
    with pytest.raises(InvalidArgument):
        typed.put_context(dataclasses.replace(run, type="Experiment"))
    assert typed.get_artifact(dataset.id or 0) == dataset
    assert typed.get_execution(execution.id or 0).type == "Train"
    assert typed.get_context(run.id or 0).type == "Run"


def test_updating_a_missing_id_is_not_found(typed: MetadataStore) -> None:
    with pytest.raises(NotFound):
        typed.put_artifact(Artifact("Dataset", id=10**6))
    with pytest.raises(NotFound):
        typed.put_context(Context("Run", "r", id=10**6))
    assert typed.counts()["artifacts"] == typed.counts()["contexts"] == 0


def test_names_are_unique_per_type(typed: MetadataStore) -> None:
    typed.put_artifact(Artifact("Dataset", name="iris"))
    with pytest.raises(AlreadyExists, match="iris"):
        typed.put_artifact(Artifact("Dataset", name="iris"))
    typed.put_artifact(Artifact("Model", name="iris"))
    # Unnamed artifacts never collide.
    typed.put_artifact(Artifact("Dataset"))
    typed.put_artifact(Artifact("Dataset"))

    typed.put_execution(Execution("Train", name="t"))
    with pytest.raises(AlreadyExists):
        typed.put_execution(Execution("Train", name="t"))

    typed.put_context(Context("Run", "r1"))
    typed.put_context(Context("Experiment", "r1"))
    with pytest.raises(AlreadyExists):
        typed.put_context(Context("Run", "r1"))
    other = typed.put_context(Context("Run", "r2"))
    with pytest.raises(AlreadyExists):
        typed.put_context(dataclasses.replace(other, name="r1"))
    assert typed.get_context(other.id or 0).name == "r2"
    assert typed.counts()["artifacts"] == 4
    assert typed.counts()["contexts"] == 3


@pytest.mark.parametrize("name", ["", "  "])
def test_context_names_must_not_be_blank(typed: MetadataStore, name: str) -> None:
    with pytest.raises(InvalidArgument):
        typed.put_context(Context("Run", name))


def test_text_with_nul_characters_is_invalid(typed: MetadataStore) -> None:
    # PostgreSQL cannot store NUL in text; SQLite could, but the contract is the same.
    before = typed.counts()
    for bad in (
        Context("Run", "a\x00b"),
        Artifact("Dataset", name="a\x00b"),
        Artifact("Dataset", uri="file:///a\x00b"),
        Artifact("Dataset", custom_properties={"note": "a\x00b"}),
        Artifact("Dataset", custom_properties={"a\x00b": 1}),
        Artifact("Dataset", properties={"split": "\x00"}),
    ):
        with pytest.raises(InvalidArgument, match="NUL"):
            if isinstance(bad, Context):
                typed.put_context(bad)
            else:
                typed.put_artifact(bad)
    assert typed.counts() == before
    # Escaped inside a struct it is just JSON, and round-trips.
    stored = typed.put_artifact(Artifact("Dataset", custom_properties={"s": {"k": "a\x00b"}}))
    assert typed.get_artifact(stored.id or 0).custom_properties == {"s": {"k": "a\x00b"}}


def test_get_of_a_missing_id_is_not_found(store: MetadataStore) -> None:
    with pytest.raises(NotFound, match="artifact"):
        store.get_artifact(1)
    with pytest.raises(NotFound, match="execution"):
        store.get_execution(1)
    with pytest.raises(NotFound, match="context"):
        store.get_context(1)


def test_links_to_missing_records_are_not_found(typed: MetadataStore) -> None:
    run = typed.put_context(Context("Run", "r"))
    artifact = typed.put_artifact(Artifact("Dataset"))
    before = typed.counts()
    with pytest.raises(NotFound):
        typed.put_attribution(run.id or 0, 10**6)
    with pytest.raises(NotFound):
        typed.put_attribution(10**6, artifact.id or 0)
    with pytest.raises(NotFound):
        typed.put_association(run.id or 0, 10**6)
    with pytest.raises(NotFound):
        typed.put_parent_context(10**6, run.id or 0)
    with pytest.raises(InvalidArgument):
        typed.put_parent_context(run.id or 0, run.id or 0)
    assert typed.counts() == before


# ---- put_execution -------------------------------------------------------------------------


def test_put_execution_writes_records_events_and_links(typed: MetadataStore) -> None:
    experiment = typed.put_context(Context("Experiment", "exp"))
    base = typed.put_artifact(Artifact("Model", name="base"))
    written = typed.put_execution(
        Execution("Train", properties={"epochs": 3}),
        inputs={"examples": Artifact("Dataset", properties={"rows": 10}), "base": base},
        outputs={"model": Artifact("Model", properties={"accuracy": 0.9})},
        contexts=[experiment, Context("Run", "run-1")],
    )
    execution_id = written.execution.id
    assert execution_id is not None
    assert written.inputs["base"] == base
    assert written.inputs["examples"].id is not None
    assert written.outputs["model"].properties == {"accuracy": 0.9}
    expected = {
        (written.inputs["examples"].id, EventType.INPUT, "examples"),
        (base.id, EventType.INPUT, "base"),
        (written.outputs["model"].id, EventType.OUTPUT, "model"),
    }
    assert {(e.artifact_id, e.type, e.path) for e in written.events} == expected
    stored_events = typed.find_events(execution_ids=[execution_id])
    assert {(e.artifact_id, e.type, e.path) for e in stored_events} == expected
    assert all(e.execution_id == execution_id and e.time is not None for e in stored_events)

    run = typed.find_context("Run", "run-1")
    assert run is not None
    all_ids = {a for a, _, _ in expected}
    for context in (experiment, run):
        assert {a.id for a in typed.find_artifacts(context=context.id)} == all_ids
        assert [e.id for e in typed.find_executions(context=context.id)] == [execution_id]


def test_put_execution_links_are_idempotent(typed: MetadataStore) -> None:
    run = typed.put_context(Context("Run", "r"))
    dataset = typed.put_artifact(Artifact("Dataset"))
    written = typed.put_execution(Execution("Train"), inputs={"d": dataset}, contexts=[run])
    typed.put_attribution(run.id or 0, dataset.id or 0)
    typed.put_association(run.id or 0, written.execution.id or 0)
    typed.put_execution(written.execution, contexts=[run])
    counts = typed.counts()
    assert (counts["attributions"], counts["associations"]) == (1, 1)


def _failing_writes(store: MetadataStore) -> list[tuple[dict[str, object], type[RatchetError]]]:
    """put_execution arguments that fail after part of the write is done, and the error."""
    store.put_artifact(Artifact("Model", name="taken"))
    run = store.put_context(Context("Run", "existing"))
    model = Artifact("Model")
    return [
        ({"outputs": {"m": model, "x": Artifact("Unregistered")}}, NotFound),
        ({"inputs": {"d": Artifact("Dataset"), "ghost": Artifact("Dataset", id=10**6)}}, NotFound),
        ({"outputs": {"m": Artifact("Model", properties={"accuracy": "high"})}}, InvalidArgument),
        ({"outputs": {"m": Artifact("Model", name="taken")}}, AlreadyExists),
        ({"outputs": {"m": model}, "contexts": [Context("Nope", "c")]}, NotFound),
        ({"outputs": {"m": model}, "contexts": [run, Context("Run", "existing")]}, AlreadyExists),
        ({"outputs": {"m": model}, "contexts": [run, Context("Run", "c", id=10**6)]}, NotFound),
    ]


def test_put_execution_is_one_transaction(typed: MetadataStore) -> None:
    cases = _failing_writes(typed)
    before = typed.counts()
    for arguments, error in cases:
        inputs = {"first": Artifact("Dataset", properties={"rows": 1})}
        inputs.update(arguments.pop("inputs", {}))  # type: ignore[call-overload]
        with pytest.raises(error):
            typed.put_execution(
                Execution("Train", name="half", properties={"epochs": 1}),
                inputs=inputs,
                **arguments,  # type: ignore[arg-type]
            )
        assert typed.counts() == before, arguments
    assert typed.find_executions(name="half") == []


# ---- find ----------------------------------------------------------------------------------


def test_find_by_type_and_name(typed: MetadataStore) -> None:
    iris = typed.put_artifact(Artifact("Dataset", name="iris"))
    wine = typed.put_artifact(Artifact("Dataset", name="wine"))
    model = typed.put_artifact(Artifact("Model", name="iris"))
    assert typed.find_artifacts(type="Dataset") == [iris, wine]
    assert typed.find_artifacts(name="iris") == [iris, model]
    assert typed.find_artifacts(type="Model", name="iris") == [model]
    assert typed.find_artifacts(type="Unregistered") == []
    assert typed.find_artifacts(ids=[model.id, iris.id]) == [iris, model]
    assert typed.find_artifacts(ids=[]) == []
    assert typed.find_artifacts() == [iris, wine, model]
    run = typed.put_context(Context("Run", "r"))
    assert typed.find_context("Run", "r") == run
    assert typed.find_context("Run", "missing") is None
    assert typed.find_context("Unregistered", "r") is None


def test_find_by_declared_property_values(typed: MetadataStore) -> None:
    a = typed.put_artifact(
        Artifact("Model", properties={"accuracy": 0.5, "final": True}, custom_properties={})
    )
    b = typed.put_artifact(Artifact("Model", properties={"accuracy": 0.75, "final": False}))
    c = typed.put_artifact(Artifact("Dataset", properties={"rows": 10, "split": "train"}))
    d = typed.put_artifact(Artifact("Dataset", properties={"rows": 20, "split": "train"}))
    assert typed.find_artifacts(properties={"accuracy": 0.75}) == [b]
    assert typed.find_artifacts(properties={"final": True}) == [a]
    assert typed.find_artifacts(properties={"final": False}) == [b]
    assert typed.find_artifacts(properties={"rows": 20}) == [d]
    assert typed.find_artifacts(properties={"split": "train"}) == [c, d]
    assert typed.find_artifacts(properties={"split": "train", "rows": 10}) == [c]
    assert typed.find_artifacts(properties={"split": "test"}) == []
    # A declared property is not a custom one of the same name.
    assert typed.find_artifacts(custom_properties={"rows": 10}) == []


def test_find_by_custom_property_values(typed: MetadataStore) -> None:
    values: list[object] = [1, 2.5, "1", True, False, 0, {"k": [1]}, math.nan, math.inf]
    runs = [
        typed.put_context(Context("Run", f"r{i}", custom_properties={"v": v, "i": i}))
        for i, v in enumerate(values)
    ]
    # Each value finds only its own record: True is not 1, "1" is not 1, and NaN finds NaN
    # (SQLite stores it as NULL, PostgreSQL as NaN).
    for run, value in zip(runs, values, strict=True):
        found = typed.find_contexts(custom_properties={"v": value})
        assert [c.id for c in found] == [run.id], value
    assert typed.find_contexts(custom_properties={"v": 2.5, "i": 1}) == [runs[1]]
    assert typed.find_contexts(custom_properties={"v": 2.5, "i": 2}) == []


def test_find_an_int_matches_an_equal_declared_double(typed: MetadataStore) -> None:
    execution = typed.put_execution(Execution("Train", properties={"lr": 1})).execution
    typed.put_execution(Execution("Train", properties={"lr": 0.5}))
    assert typed.find_executions(properties={"lr": 1}) == [execution]
    assert typed.find_executions(properties={"lr": 1.0}) == [execution]


def test_find_by_context_and_parent(typed: MetadataStore) -> None:
    experiment = typed.put_context(Context("Experiment", "exp"))
    runs = [typed.put_context(Context("Run", f"r{i}")) for i in range(3)]
    for run in runs[:2]:
        typed.put_parent_context(experiment.id or 0, run.id or 0)
    typed.put_parent_context(experiment.id or 0, runs[0].id or 0)  # idempotent
    dataset = typed.put_artifact(Artifact("Dataset"))
    typed.put_artifact(Artifact("Dataset"))
    typed.put_attribution(runs[0].id or 0, dataset.id or 0)
    execution = typed.put_execution(Execution("Train")).execution
    typed.put_execution(Execution("Train"))
    typed.put_association(runs[1].id or 0, execution.id or 0)

    assert typed.find_contexts(parent=experiment.id) == runs[:2]
    assert typed.find_contexts(parent=runs[2].id) == []
    assert typed.find_parents(runs[0].id or 0) == [experiment]
    assert typed.find_parents(experiment.id or 0) == []
    assert typed.find_artifacts(context=runs[0].id) == [dataset]
    assert typed.find_artifacts(context=runs[1].id) == []
    assert typed.find_executions(context=runs[1].id) == [execution]
    assert typed.find_executions(context=runs[0].id) == []
    assert typed.counts()["parent_contexts"] == 2


def test_find_by_creation_time(typed: MetadataStore) -> None:
    artifacts = [typed.put_artifact(Artifact("Dataset", uri=f"u{i}")) for i in range(20)]
    times = [a.create_time for a in artifacts]
    assert all(t is not None for t in times)
    for t in times:
        assert t is not None
        # A record's own create_time is an inclusive lower bound and an exclusive upper one.
        assert typed.find_artifacts(created_after=t) == [
            a for a, at in zip(artifacts, times, strict=True) if at and at >= t
        ]
        assert typed.find_artifacts(created_before=t) == [
            a for a, at in zip(artifacts, times, strict=True) if at and at < t
        ]
    first, last = times[0], times[-1]
    assert first is not None and last is not None
    assert typed.find_artifacts(created_after=last + timedelta(seconds=1)) == []
    window = typed.find_artifacts(
        created_after=first - timedelta(seconds=1), created_before=last + timedelta(seconds=1)
    )
    assert window == artifacts


def test_find_by_state_uri_and_sha256(typed: MetadataStore) -> None:
    live = typed.put_artifact(Artifact("Dataset", uri="s3://a", sha256="a" * 64))
    gone = typed.put_artifact(
        Artifact("Dataset", uri="s3://b", sha256="b" * 64, state=ArtifactState.DELETED)
    )
    assert typed.find_artifacts(state=ArtifactState.DELETED) == [gone]
    assert typed.find_artifacts(state="LIVE") == [live]
    assert typed.find_artifacts(uri="s3://b") == [gone]
    assert typed.find_artifacts(sha256="a" * 64) == [live]
    assert typed.find_artifacts(sha256="c" * 64) == []
    running = typed.put_execution(Execution("Train", state=ExecutionState.RUNNING)).execution
    typed.put_execution(Execution("Train", state=ExecutionState.COMPLETE))
    assert typed.find_executions(state=ExecutionState.RUNNING) == [running]
    with pytest.raises(InvalidArgument):
        typed.find_executions(uri="s3://a")
    with pytest.raises(InvalidArgument):
        typed.find_contexts(state="LIVE")


def test_limit_and_newest_first(typed: MetadataStore) -> None:
    runs = [typed.put_context(Context("Run", f"r{i}")) for i in range(5)]
    assert typed.find_contexts(type="Run") == runs
    assert typed.find_contexts(type="Run", newest_first=True) == runs[::-1]
    assert typed.find_contexts(type="Run", limit=2) == runs[:2]
    assert typed.find_contexts(type="Run", limit=2, newest_first=True) == [runs[4], runs[3]]
    assert typed.find_contexts(limit=0) == []


def test_unknown_and_misplaced_filters_are_invalid(typed: MetadataStore) -> None:
    with pytest.raises(InvalidArgument, match="colour"):
        typed.find_artifacts(colour="red")
    with pytest.raises(InvalidArgument):
        typed.find_artifacts(parent=1)
    with pytest.raises(InvalidArgument):
        typed.find_contexts(context=1)


# ---- time series ---------------------------------------------------------------------------


def test_time_series_round_trip(typed: MetadataStore) -> None:
    run, other = (typed.put_context(Context("Run", name)) for name in ("r", "o"))
    rid, oid = run.id or 0, other.id or 0
    typed.write_time_series(
        [
            SeriesBlock.of(rid, "loss", [0, 1, 2], [10.0, 11.0, 12.0], [1.0, 0.5, 0.25]),
            SeriesBlock.of(rid, "acc", [0, 1], [10.0, 11.0], [0.1, 0.2]),
            SeriesBlock.of(oid, "loss", [0], [10.0], [9.0]),
            SeriesBlock.of(rid, "empty", [], [], []),
        ]
    )
    series = typed.read_time_series(rid)
    assert sorted(series) == ["acc", "loss"]
    loss = series["loss"]
    assert (loss.context_id, loss.name) == (rid, "loss")
    assert loss.steps.tolist() == [0, 1, 2]
    assert loss.wall_times.tolist() == [10.0, 11.0, 12.0]
    assert loss.values.tolist() == [1.0, 0.5, 0.25]
    assert loss.steps.dtype == np.int64 and loss.values.dtype == np.float64
    assert list(typed.read_time_series(rid, names=["acc"])) == ["acc"]
    assert typed.read_time_series(rid, names=[]) == {}
    assert typed.read_time_series(oid)["loss"].values.tolist() == [9.0]
    assert typed.last_steps(rid) == {"loss": 2, "acc": 1}
    assert typed.read_time_series(10**6) == {}
    assert typed.last_steps(10**6) == {}
    typed.write_time_series([])


def test_time_series_blocks_are_concatenated_in_step_order(typed: MetadataStore) -> None:
    rid = typed.put_context(Context("Run", "r")).id or 0
    big = 2**40
    typed.write_time_series([SeriesBlock.of(rid, "loss", [5, 6, big], [5, 6, 7], [50, 60, 70])])
    typed.write_time_series([SeriesBlock.of(rid, "loss", [0, 1, 2], [0, 1, 2], [0, 10, 20])])
    typed.write_time_series(
        [
            SeriesBlock.of(rid, "loss", [4, 3], [4, 3], [40, 30]),
            SeriesBlock.of(rid, "loss", [3], [3.5], [31]),
        ]
    )
    loss = typed.read_time_series(rid)["loss"]
    assert loss.steps.tolist() == [0, 1, 2, 3, 3, 4, 5, 6, big]
    # Equal steps keep the order they were written in.
    assert loss.values.tolist() == [0, 10, 20, 30, 31, 40, 50, 60, 70]
    assert loss.wall_times.tolist() == [0, 1, 2, 3, 3.5, 4, 5, 6, 7]
    assert typed.last_steps(rid) == {"loss": big}


def test_time_series_keep_nan_and_infinite_values(typed: MetadataStore) -> None:
    rid = typed.put_context(Context("Run", "r")).id or 0
    typed.write_time_series(
        [SeriesBlock.of(rid, "loss", [0, 1, 2], [0.0, math.nan, 2.0], [math.nan, math.inf, -1.5])]
    )
    loss = typed.read_time_series(rid)["loss"]
    assert math.isnan(loss.values[0])
    assert loss.values[1:].tolist() == [math.inf, -1.5]
    assert math.isnan(loss.wall_times[1])


def test_series_block_lengths_must_agree() -> None:
    with pytest.raises(InvalidArgument, match="loss"):
        SeriesBlock.of(1, "loss", [0, 1], [0.0], [1.0, 2.0])
    with pytest.raises(InvalidArgument):
        SeriesBlock.of(1, "loss", ["a"], [0.0], [1.0])


# ---- deletion ------------------------------------------------------------------------------


def test_delete_contexts_removes_links_and_series_but_keeps_artifacts(
    typed: MetadataStore,
) -> None:
    experiment = typed.put_context(Context("Experiment", "exp", properties={"owner": "me"}))
    kept = typed.put_context(Context("Run", "kept", custom_properties={"x": 1}))
    typed.put_parent_context(experiment.id or 0, kept.id or 0)
    typed.write_time_series([SeriesBlock.of(kept.id or 0, "loss", [0], [0.0], [1.0])])
    baseline = typed.counts()

    run = typed.put_context(Context("Run", "doomed", properties={"seed": 1}))
    child = typed.put_context(Context("Run", "child"))
    rid = run.id or 0
    typed.put_parent_context(experiment.id or 0, rid)
    typed.put_parent_context(rid, child.id or 0)
    written = typed.put_execution(
        Execution("Train"),
        inputs={"d": Artifact("Dataset", properties={"rows": 5})},
        outputs={"m": Artifact("Model", custom_properties={"note": "keep me"})},
        contexts=[run],
    )
    typed.write_time_series([SeriesBlock.of(rid, "loss", [0, 1], [0.0, 1.0], [1.0, 2.0])])

    typed.delete_contexts([rid, child.id or 0])
    typed.delete_contexts([])

    with pytest.raises(NotFound):
        typed.get_context(rid)
    assert typed.read_time_series(rid) == {}
    assert typed.find_contexts(parent=experiment.id) == [kept]
    model = typed.get_artifact(written.outputs["m"].id or 0)
    assert model.custom_properties == {"note": "keep me"}
    assert typed.get_execution(written.execution.id or 0) == written.execution
    assert len(typed.find_events(execution_ids=[written.execution.id or 0])) == 2
    after = typed.counts()
    for table in (
        "contexts",
        "context_properties",
        "attributions",
        "associations",
        "parent_contexts",
        "time_series",
    ):
        assert after[table] == baseline[table], table
    assert after["artifacts"] == baseline["artifacts"] + 2
    assert after["artifact_properties"] == baseline["artifact_properties"] + 2
    assert typed.read_time_series(kept.id or 0)["loss"].values.tolist() == [1.0]
    assert typed.get_context(kept.id or 0).custom_properties == {"x": 1}
