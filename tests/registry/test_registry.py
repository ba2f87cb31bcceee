from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from training_data import prepared

from ratchet.artifacts import ArtifactStore
from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound
from ratchet.metadata import Artifact, MetadataStore
from ratchet.registry import CHAMPION, Registry
from ratchet.training.classic import train_classic
from ratchet.training.jobs import JOB_TYPES, MODEL


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("registry")
    dataset = prepared(root / "data", rows=1500).folder
    first, second = root / "m1", root / "m2"
    train_classic("sklearn-logistic", {}, dataset=dataset, model_dir=first, threads=1)
    train_classic("lightgbm", {"n_estimators": 20}, dataset=dataset, model_dir=second, threads=1)
    return first, second, dataset


@pytest.fixture
def registry(store: MetadataStore, tmp_path: Path) -> Registry:
    return Registry(store, ArtifactStore(str(tmp_path / "artifacts")))


def test_versions_aliases_and_rollback(
    registry: Registry, bundles: tuple[Path, Path, Path]
) -> None:
    first, second, dataset = bundles
    for record_type in JOB_TYPES:
        registry.store.put_type(record_type)
    source = Artifact(MODEL, uri=str(first))
    v1 = registry.register("churn", first, labels={"team": "growth"}, inputs={"model": source})
    v2 = registry.register("churn", second, aliases=("candidate",))
    assert (v1.version, v2.version) == (1, 2)
    assert (v1.framework, v2.framework) == ("sklearn", "lightgbm")
    assert registry.get("churn").version == 2
    assert registry.get("churn@1").labels == {"team": "growth"}
    assert registry.get("churn:candidate").version == 2
    assert registry.set_alias("churn", CHAMPION, 1) is None
    assert registry.set_alias("churn", CHAMPION, 2, reason="better log-loss") == 1
    assert registry.aliases("churn") == {"candidate": 2, "champion": 2}
    assert registry.rollback("churn").version == 1
    assert registry.get("churn:champion").version == 1
    assert registry.models() == ["churn"]
    bundle, version = registry.load("churn:champion")
    raw = pq.read_table(dataset / "raw_test")
    assert bundle.predict_table(raw).shape == (raw.num_rows, 2)
    assert version.version == 1
    graph = registry.store.lineage(artifact_id=v1.artifact_id, direction="upstream", depth=2)
    assert str(first) in {a.uri for a in graph.artifacts}


def test_registry_errors_are_one_line(registry: Registry, bundles: tuple[Path, Path, Path]) -> None:
    first, _, dataset = bundles
    registry.register("churn", first)
    with pytest.raises(NotFound, match="no registered model 'other'"):
        registry.get("other")
    with pytest.raises(NotFound, match="has no version 9"):
        registry.get("churn@9")
    with pytest.raises(NotFound, match="has no alias 'champion'"):
        registry.get("churn:champion")
    with pytest.raises(FailedPrecondition, match="no earlier version"):
        registry.rollback("churn")
    with pytest.raises(InvalidArgument, match="model name 'bad name'"):
        registry.register("bad name", first)
    with pytest.raises(NotFound, match="not a model bundle"):
        registry.register("churn", dataset)
    with pytest.raises(NotFound, match="has no version 5"):
        registry.set_alias("churn", CHAMPION, 5)
