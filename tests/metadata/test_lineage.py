"""Contract tests for lineage: upstream, downstream and both, by depth, on SQLite and PostgreSQL.

The graph (artifacts lower case, executions capitalised):

    dataset ─┬─> Train ──> model ──> Evaluate ──> metrics
    config ──┘                  holdout ──┘
    dataset ───> Profile ──> stats

`config` is a sibling input of `dataset`, `holdout` one of `model`, and `Profile`
a second consumer of `dataset`: none of them is the lineage of `model`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ratchet.errors import InvalidArgument, NotFound
from ratchet.metadata import (
    Artifact,
    EventType,
    Execution,
    Kind,
    LineageGraph,
    MetadataStore,
    RecordType,
)


@dataclass(frozen=True)
class Graph:
    store: MetadataStore
    ids: dict[str, int]

    def names(self, graph: LineageGraph) -> set[str]:
        by_id = {("a", i): n for n, i in self.ids.items() if n.islower()}
        by_id |= {("e", i): n for n, i in self.ids.items() if not n.islower()}
        return {by_id[("a", a.id or 0)] for a in graph.artifacts} | {
            by_id[("e", e.id or 0)] for e in graph.executions
        }

    def lineage(self, root: str, direction: str, depth: int) -> set[str]:
        key = "artifact_id" if root.islower() else "execution_id"
        graph = self.store.lineage(**{key: self.ids[root]}, direction=direction, depth=depth)
        artifact_ids = {a.id for a in graph.artifacts}
        execution_ids = {e.id for e in graph.executions}
        # Every event returned joins two nodes of the graph, once.
        for event in graph.events:
            assert event.artifact_id in artifact_ids
            assert event.execution_id in execution_ids
        edges = [(e.artifact_id, e.execution_id, e.type) for e in graph.events]
        assert len(edges) == len(set(edges))
        return self.names(graph)


@pytest.fixture
def chain(store: MetadataStore) -> Graph:
    for name in ("Dataset", "Config", "Model", "Metrics", "Stats"):
        store.put_type(RecordType(Kind.ARTIFACT, name))
    for name in ("Train", "Evaluate", "Profile"):
        store.put_type(RecordType(Kind.EXECUTION, name))
    dataset = store.put_artifact(Artifact("Dataset", name="dataset"))
    config = store.put_artifact(Artifact("Config", name="config"))
    holdout = store.put_artifact(Artifact("Dataset", name="holdout"))
    train = store.put_execution(
        Execution("Train"),
        inputs={"examples": dataset, "config": config},
        outputs={"model": Artifact("Model")},
    )
    model = train.outputs["model"]
    evaluate = store.put_execution(
        Execution("Evaluate"),
        inputs={"model": model, "examples": holdout},
        outputs={"metrics": Artifact("Metrics")},
    )
    profile = store.put_execution(
        Execution("Profile"), inputs={"examples": dataset}, outputs={"stats": Artifact("Stats")}
    )
    ids = {
        "dataset": dataset.id,
        "config": config.id,
        "holdout": holdout.id,
        "model": model.id,
        "metrics": evaluate.outputs["metrics"].id,
        "stats": profile.outputs["stats"].id,
        "Train": train.execution.id,
        "Evaluate": evaluate.execution.id,
        "Profile": profile.execution.id,
    }
    return Graph(store, {name: i for name, i in ids.items() if i is not None})


# (root, direction, depth, everything the lineage holds)
CASES: list[tuple[str, str, int, set[str]]] = [
    ("model", "upstream", 0, {"model"}),
    ("model", "upstream", 1, {"model", "Train"}),
    ("model", "upstream", 2, {"model", "Train", "dataset", "config"}),
    ("model", "upstream", 10, {"model", "Train", "dataset", "config"}),
    ("model", "downstream", 1, {"model", "Evaluate"}),
    ("model", "downstream", 2, {"model", "Evaluate", "metrics"}),
    ("model", "downstream", 3, {"model", "Evaluate", "metrics"}),
    ("model", "both", 0, {"model"}),
    ("model", "both", 1, {"model", "Train", "Evaluate"}),
    ("model", "both", 4, {"model", "Train", "dataset", "config", "Evaluate", "metrics"}),
    ("metrics", "upstream", 1, {"metrics", "Evaluate"}),
    ("metrics", "upstream", 2, {"metrics", "Evaluate", "model", "holdout"}),
    ("metrics", "upstream", 3, {"metrics", "Evaluate", "model", "holdout", "Train"}),
    (
        "metrics",
        "upstream",
        4,
        {"metrics", "Evaluate", "model", "holdout", "Train", "dataset", "config"},
    ),
    ("metrics", "downstream", 4, {"metrics"}),
    ("dataset", "upstream", 4, {"dataset"}),
    ("dataset", "downstream", 1, {"dataset", "Train", "Profile"}),
    (
        "dataset",
        "downstream",
        4,
        {"dataset", "Train", "Profile", "model", "stats", "Evaluate", "metrics"},
    ),
    ("config", "both", 2, {"config", "Train", "model"}),
    ("Train", "upstream", 1, {"Train", "dataset", "config"}),
    ("Train", "downstream", 1, {"Train", "model"}),
    ("Train", "both", 0, {"Train"}),
    ("Train", "both", 2, {"Train", "dataset", "config", "model", "Evaluate"}),
    ("Evaluate", "upstream", 2, {"Evaluate", "model", "holdout", "Train"}),
]


def test_lineage_by_direction_and_depth(chain: Graph) -> None:
    # One store for the whole table: a store per case would spend its time migrating.
    for root, direction, depth, expected in CASES:
        assert chain.lineage(root, direction, depth) == expected, (root, direction, depth)


def test_both_directions_do_not_pull_in_siblings(chain: Graph) -> None:
    # "both" is upstream plus downstream of the root, not downstream of its ancestors.
    for root in ("model", "Train"):
        assert not chain.lineage(root, "both", 10) & {"holdout", "Profile", "stats"}, root
    for root in ("Evaluate", "metrics"):
        assert not chain.lineage(root, "both", 10) & {"Profile", "stats"}, root
    assert not chain.lineage("holdout", "both", 10) & {"Train", "dataset", "config"}


def test_lineage_returns_records_and_events(chain: Graph) -> None:
    graph = chain.store.lineage(artifact_id=chain.ids["model"], direction="both", depth=1)
    assert [a.id for a in graph.artifacts] == [chain.ids["model"]]
    assert graph.artifacts[0] == chain.store.get_artifact(chain.ids["model"])
    assert {e.type for e in graph.executions} == {"Train", "Evaluate"}
    assert {(e.execution_id, e.type, e.path) for e in graph.events} == {
        (chain.ids["Train"], EventType.OUTPUT, "model"),
        (chain.ids["Evaluate"], EventType.INPUT, "model"),
    }
    root_only = chain.store.lineage(artifact_id=chain.ids["model"], depth=0)
    assert (len(root_only.artifacts), root_only.executions, root_only.events) == (1, (), ())


def test_find_events_of_artifacts_and_executions(chain: Graph) -> None:
    events = chain.store.find_events(artifact_ids=[chain.ids["dataset"]])
    assert {(e.execution_id, e.type, e.path) for e in events} == {
        (chain.ids["Train"], EventType.INPUT, "examples"),
        (chain.ids["Profile"], EventType.INPUT, "examples"),
    }
    both = chain.store.find_events(
        artifact_ids=[chain.ids["metrics"]], execution_ids=[chain.ids["Train"]]
    )
    assert len(both) == 4
    assert chain.store.find_events() == []


def test_an_execution_that_rewrites_its_input_terminates(store: MetadataStore) -> None:
    store.put_type(RecordType(Kind.ARTIFACT, "Table"))
    store.put_type(RecordType(Kind.EXECUTION, "Update"))
    table = store.put_artifact(Artifact("Table"))
    update = store.put_execution(
        Execution("Update"), inputs={"before": table}, outputs={"after": table}
    )
    for direction in ("upstream", "downstream", "both"):
        graph = store.lineage(artifact_id=table.id, direction=direction, depth=50)
        assert [a.id for a in graph.artifacts] == [table.id]
        assert [e.id for e in graph.executions] == [update.execution.id]
    both = store.lineage(artifact_id=table.id, depth=50)
    assert {e.type for e in both.events} == {EventType.INPUT, EventType.OUTPUT}


def test_bad_lineage_requests(chain: Graph) -> None:
    store = chain.store
    with pytest.raises(InvalidArgument, match="direction"):
        store.lineage(artifact_id=chain.ids["model"], direction="sideways")
    with pytest.raises(InvalidArgument, match="exactly one"):
        store.lineage(artifact_id=chain.ids["model"], execution_id=chain.ids["Train"])
    with pytest.raises(InvalidArgument, match="exactly one"):
        store.lineage()
    with pytest.raises(InvalidArgument, match="depth"):
        store.lineage(artifact_id=chain.ids["model"], depth=-1)
    with pytest.raises(NotFound, match="artifact"):
        store.lineage(artifact_id=10**6)
    with pytest.raises(NotFound, match="execution"):
        store.lineage(execution_id=10**6)


def test_event_rows_name_both_ends_the_type_and_the_path(chain: Graph) -> None:
    """The plain rows `ratchet lineage --json` and the dashboard show, one per event."""
    graph = chain.store.lineage(artifact_id=chain.ids["model"], direction="upstream", depth=2)
    rows = graph.event_rows()
    assert len(rows) == len(graph.events)
    assert {(r["artifact_id"], r["execution_id"], r["type"], r["path"]) for r in rows} == {
        (chain.ids["dataset"], chain.ids["Train"], "INPUT", "examples"),
        (chain.ids["config"], chain.ids["Train"], "INPUT", "config"),
        (chain.ids["model"], chain.ids["Train"], "OUTPUT", "model"),
    }
