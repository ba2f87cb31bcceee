"""Fixtures for dashboard tests: one small store of real records, built once per session.

The store holds a dataset version, two versions of "churn" (two tiny classic models,
well under a second to train), their evaluations and a gate decision that promoted
the second, a policy decision, a formalization pass, a pipeline version and two
tracking experiments, one of them named with markup to check escaping. Tests only
read it. `client` makes FastAPI's TestClient, imported here alone because Starlette
warns (an error under this project's warning filters) that plain `httpx` is deprecated.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq
import pytest
from starlette.exceptions import StarletteDeprecationWarning
from training_data import prepared

from ratchet.artifacts import ArtifactStore, hash_path
from ratchet.components.versioning import PipelineVersion, record_pipeline_version
from ratchet.config import Config, load_config
from ratchet.dashboard import create_app
from ratchet.datasets import record_dataset
from ratchet.evaluation import decide_and_promote, evaluate, gate, record_evaluation
from ratchet.formalize.controller import PASS, PASS_TYPE
from ratchet.formalize.policy import Action, Decision, record_decision
from ratchet.metadata import Execution, ExecutionState, MetadataStore
from ratchet.registry import BASELINE, CANDIDATE, CHAMPION, Registry
from ratchet.tracking import Tracker
from ratchet.training.bundle import load_bundle
from ratchet.training.classic import train_classic

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

MARKUP = "<script>alert(1)<b>"  # no '/': experiment names may not hold one; the tests say it too


@dataclass(frozen=True)
class Recorded:
    """The store's configuration and the ids the tests look for."""

    config: Config
    dataset_id: int
    versions: tuple[int, int]  # artifact ids of churn@1 and churn@2
    decision_id: int
    evaluation_id: int
    pass_id: int


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    root = tmp_path_factory.mktemp("dashboard")
    config = load_config(home=root / "home", environ={}, cwd=root)
    data = prepared(root / "data", rows=1500)
    first, second = root / "m1", root / "m2"
    train_classic("sklearn-logistic", {}, dataset=data.folder, model_dir=first, threads=1)
    train_classic("lightgbm", {"n_estimators": 5}, dataset=data.folder, model_dir=second, threads=1)
    raw_test = pq.read_table(data.folder / "raw_test")
    artifacts = ArtifactStore.from_config(config)
    with MetadataStore.from_config(config) as store:
        dataset, _ = record_dataset(
            store,
            artifacts,
            data,
            name="churn",
            source=str(root / "churn.csv"),
            version=hash_path(data.folder),
            started=time.time(),
        )
        assert dataset.id is not None and dataset.sha256 is not None
        registry = Registry(store, artifacts)
        v1 = registry.register("churn", first, labels={"note": MARKUP}, aliases=(CHAMPION,))
        registry.set_alias("churn", BASELINE, 1, reason="the first model")
        v2 = registry.register("churn", second, aliases=(CANDIDATE,))
        evaluations = [evaluate(load_bundle(folder), raw_test) for folder in (first, second)]
        for version, evaluation in zip((v1, v2), evaluations, strict=True):
            recorded_evaluation = record_evaluation(
                store, artifacts, evaluation, model_version=version, dataset_version=dataset.sha256
            )
        # Promotes whatever the numbers say: the tests read the recorded reasons back.
        decision = gate(evaluations[1], evaluations[0])
        promoted = decide_and_promote(registry, decision, candidate=v2, champion=v1)
        record_decision(
            store,
            artifacts,
            Decision(Action.RETUNE, ("nothing tuned yet",), {}),
            dataset=dataset,
            hyperparameters=None,
        )
        store.put_type(PASS_TYPE)
        formalized = store.put_execution(
            Execution(
                PASS,
                state=ExecutionState.COMPLETE,
                properties={
                    "file": str(root / "churn.csv"),
                    "dataset": str(dataset.name),
                    "action": "RETUNE",
                    "candidate": "churn@2",
                    "promoted": decision.promote,
                },
                custom_properties={"model": "churn", "reasons": list(decision.reasons)},
            ),
            inputs={"dataset": dataset},
        )
        record_pipeline_version(
            store, "training", PipelineVersion("churn-training", "ab" * 32, "c0ffee" * 6 + "ab12")
        )
        for name in ("churn-exp", MARKUP):
            tracker = Tracker(store, name, description=f"about {name}")
            with tracker.start_run("lr-0.1") as run:
                run.log_params({"learning_rate": 0.1, "optimizer": "adam"})
                run.log_metrics({"val_log_loss": 0.42})
            tracker.close()
    assert recorded_evaluation.id is not None and promoted.id is not None
    assert formalized.execution.id is not None
    return Recorded(
        config=config,
        dataset_id=dataset.id,
        versions=(v1.artifact_id, v2.artifact_id),
        decision_id=promoted.id,
        evaluation_id=recorded_evaluation.id,
        pass_id=formalized.execution.id,
    )


@pytest.fixture
def client(recorded: Recorded) -> Iterator[TestClient]:
    with TestClient(create_app(recorded.config)) as opened:
        yield opened
