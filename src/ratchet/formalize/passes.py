"""One formalization pass: new data in, a decision with its evidence, maybe a new champion out.

Owns `run_pass`: the data steps (prepare, register the dataset version, validate
against the previous version's schema), the policy's decision (recorded), then
what the decision calls for — nothing (STOP), the hyperparameters from metadata
(REUSE), a new study (RETUNE), a warm-started narrowed study (FINE_TUNE), or
baseline + warmup + synthetic pre-training + a full study (REFORMALIZE) — then
full training with the same script, evaluation of candidate and champion on the
same rows, and the gate. Every step records itself in the metadata store; this
module only orders them. The controller (`controller`) calls it when data
arrives; `ratchet formalize run` calls it once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ratchet import datasets
from ratchet.artifacts import ArtifactStore
from ratchet.baseline import record_baseline, run_baseline
from ratchet.config import Config
from ratchet.data.engines.local import PreparedDataset, prepare_dataset
from ratchet.data.schema import Schema, validate
from ratchet.data.transform import Transform
from ratchet.evaluation import GateConfig, decide_and_promote, evaluate, gate, record_evaluation
from ratchet.formalize.policy import Action, Decision, PolicyInputs, decide, record_decision
from ratchet.metadata import Artifact, MetadataStore
from ratchet.registry import CANDIDATE, CHAMPION, ModelVersion, Registry
from ratchet.training.bundle import load_bundle
from ratchet.training.contract import TrainingContext
from ratchet.training.hub import Hub, WeightsRef
from ratchet.training.jobs import run_job
from ratchet.training.models import mlp_spec
from ratchet.training.pretrain import PretrainConfig, pretrain
from ratchet.training.synthetic import SyntheticGenerator
from ratchet.training.task import detect_task
from ratchet.training.warmup import WarmupConfig, warm_up
from ratchet.tuning.results import find_hyperparameters, record_best
from ratchet.tuning.space import StudyConfig
from ratchet.tuning.study import EarlyStopping, Study
from ratchet.tuning.trials import TrialTarget
from ratchet.tuning.warmstart import warm_start

TRAINER = "module:ratchet.training.tabular"
# Trials start from the warmed (and pre-trained) weights, so the space leaves the
# architecture alone: its shape is `Settings.hidden`, and changing it re-formalizes.
DEFAULT_SPACE = {
    "parameters": {
        "learning_rate": {"type": "double", "min": 1e-3, "max": 3e-2, "scale": "log"},
        "dropout": {"type": "double", "min": 0.0, "max": 0.3},
        "weight_decay": {"type": "double", "min": 1e-6, "max": 1e-2, "scale": "log"},
    },
    "metrics": [{"name": "validation_loss", "goal": "minimize"}],
}


@dataclass(frozen=True)
class Settings:
    """What a formalized pipeline runs with; kept small so a demo finishes in minutes."""

    name: str
    label: str
    key: str | None = None
    hidden: tuple[int, ...] = (32,)  # the architecture (its hash decides re-formalizing)
    fixed: dict[str, Any] = field(
        default_factory=lambda: {"epochs": 8, "batch_size": 128, "patience": 2, "threads": 1}
    )
    space: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SPACE))
    max_trials: int = 6
    parallel_trials: int = 2
    baseline_budget: float = 10.0
    warmup: WarmupConfig = field(default_factory=lambda: WarmupConfig(steps=50, start_lr=1e-4))
    pretrain: PretrainConfig | None = field(
        default_factory=lambda: PretrainConfig(rows=5000, epochs=1)
    )
    init_weights: str | None = None  # a hub reference to domain-specific weights
    gate: GateConfig = field(default_factory=GateConfig)
    error_budget: int = 0  # schema anomalies allowed before the pass stops
    drift_thresholds: dict[str, float] = field(default_factory=dict)  # over the defaults
    seed: int = 0


@dataclass(frozen=True)
class PassResult:
    dataset: Artifact
    decision: Decision
    candidate: ModelVersion | None = None
    promoted: bool = False
    reasons: tuple[str, ...] = ()


Say = Callable[[str], None]


def run_pass(config: Config, source: str, settings: Settings, *, say: Say = print) -> PassResult:
    """Prepare `source` as a dataset version, decide, act, and gate the candidate."""
    artifacts = ArtifactStore.from_config(config)
    with MetadataStore.from_config(config) as store:
        registry, hub = Registry(store, artifacts), Hub(store, artifacts)
        previous = datasets.find_versions(store, settings.name)
        dataset, prepared = _prepare(store, artifacts, config, source, settings)
        say(f"dataset {dataset.name}: {dict(prepared.rows)}")
        anomalies = _anomalies(previous, prepared)
        task = detect_task(prepared.train_statistics)
        spec = mlp_spec(prepared.transform, task, hidden=settings.hidden)
        domain = hub.resolve(settings.init_weights) if settings.init_weights else None
        inputs = PolicyInputs(
            statistics=prepared.statistics,
            anomalies=tuple(anomalies),
            error_budget=settings.error_budget,
            architecture_sha256=spec.sha256,
            init_weights_sha256=domain.sha256 if domain is not None else None,
            thresholds=settings.drift_thresholds,
        )
        decision = decide(store, artifacts, inputs)
        tuned = find_hyperparameters(store)
        record_decision(
            store, artifacts, decision, dataset=dataset, hyperparameters=tuned[0] if tuned else None
        )
        say(f"decision: {decision.action.value} ({'; '.join(decision.reasons)})")
        if decision.action == Action.STOP:
            return PassResult(dataset, decision, reasons=decision.reasons)
        folder = prepared.folder
        version = str(dataset.sha256)
        start = domain
        if decision.action == Action.REFORMALIZE:
            start = _reformalize(registry, hub, dataset, prepared, settings, spec, domain, say)
        elif decision.action in (Action.RETUNE, Action.REUSE) and tuned:
            # Same start as the study that tuned them; FINE_TUNE starts from the new weights.
            start = _start_weights(hub, tuned[0]) or domain
        hyperparameters = _hyperparameters(
            store, decision, settings, folder, version, (domain, start), spec.sha256, say, config
        )
        model_dir = config.home / "models" / settings.name / f"{version[:12]}-{int(time.time())}"
        fixed = {**hyperparameters, "hidden": list(settings.hidden)}
        if start is not None:
            fixed["init_weights"] = start.sha256
        result = run_job(
            TRAINER,
            fixed,
            context=TrainingContext(model_dir=model_dir, dataset=str(folder), stores=config),
            store=store,
            inputs={"dataset": dataset},
        )
        if result.state != "COMPLETE":
            say(f"full training ended {result.state}: {result.reason}")
            return PassResult(dataset, decision, reasons=(f"training {result.state}",))
        assert result.execution_id is not None
        # The job's Model output links the version to its training run in lineage.
        trained = store.lineage(execution_id=result.execution_id, direction="downstream", depth=1)
        models = [a for a in trained.artifacts if a.type == "Model"]
        candidate = registry.register(
            settings.name,
            model_dir,
            labels={"kind": "custom", "decision": decision.action.value},
            inputs={
                "dataset": dataset,
                "hyperparameters": find_hyperparameters(store)[0],
                **({"model": models[0]} if models else {}),
            },
            aliases=(CANDIDATE,),
        )
        promoted, reasons = _gate(registry, artifacts, candidate, folder, version, settings)
        say(("promoted " if promoted else "kept the champion over ") + f"{candidate}: {reasons[0]}")
        return PassResult(dataset, decision, candidate, promoted, reasons)


def _prepare(
    store: MetadataStore,
    artifacts: ArtifactStore,
    config: Config,
    source: str,
    settings: Settings,
) -> tuple[Artifact, PreparedDataset]:
    staging = config.home / "datasets" / settings.name / f".staging-{time.time_ns()}"
    started = time.time()
    # The first version's transform is kept: the model's inputs must keep their shape.
    previous = datasets.find_versions(store, settings.name)
    transform = (
        Transform.from_json((Path(previous[-1].uri) / "transform.json").read_text())
        if previous
        else None
    )
    prepared = prepare_dataset(
        source, staging, label=settings.label, key=settings.key, transform=transform
    )
    dataset, prepared, _ = datasets.publish_version(
        store, artifacts, prepared, name=settings.name, source=source, started=started
    )
    return dataset, prepared


def _anomalies(previous: list[Artifact], prepared: PreparedDataset) -> list[Any]:
    """The new data's anomalies against the schema of the version before it.

    Values outside the last version's observed range are what drift detection is for
    (the policy retunes on it); they do not count against the error budget.
    """
    if not previous:
        return []
    schema = Schema.load(Path(previous[0].uri) / "schema.yaml")
    return [a for a in validate(prepared.statistics, schema) if a.kind != "out_of_range"]


def _reformalize(
    registry: Registry,
    hub: Hub,
    dataset: Artifact,
    prepared: PreparedDataset,
    settings: Settings,
    spec: Any,
    domain: WeightsRef | None,
    say: Say,
) -> WeightsRef:
    """Baseline, warmup and synthetic pre-training: the starting point of a new study."""
    folder, version = prepared.folder, str(dataset.sha256)
    task = detect_task(prepared.train_statistics)
    baseline_dir = folder.parent / f"baseline-{version[:12]}-{int(time.time())}"
    baseline = run_baseline(
        folder, baseline_dir, budget_seconds=settings.baseline_budget, seed=settings.seed, n_jobs=1
    )
    record_baseline(registry, baseline, name=f"{settings.name}-baseline", dataset=dataset)
    say(f"baseline {baseline.automl.estimator}: {_short(baseline.automl.metrics)}")
    warm = warm_up(
        hub, spec, folder, task, dataset_version=version, config=settings.warmup,
        seed=settings.seed, initial=domain,
    )  # fmt: skip
    say(f"warmup {'cache hit' if warm.cached else 'trained'}: {warm.weights}")
    if settings.pretrain is None:
        return warm.weights
    teacher = load_bundle(baseline.automl.folder)

    def label(rows: pa.Table) -> Any:
        probabilities = teacher.predict_table(rows)
        if not task.classification:
            return probabilities
        names = np.asarray(task.classes)[np.argmax(probabilities, axis=1)]
        return names

    generator = SyntheticGenerator.from_statistics(prepared.train_statistics, labeller=label)
    weights = pretrain(
        hub, spec, folder, task, start=warm.weights, generator=generator,
        labeller_name=f"baseline:{baseline_dir.name}", dataset_version=version,
        config=settings.pretrain, seed=settings.seed,
    )  # fmt: skip
    say(f"pre-trained on {settings.pretrain.rows} synthetic rows: {weights}")
    return weights


def _start_weights(hub: Hub, tuned: Artifact) -> WeightsRef | None:
    sha = tuned.custom_properties.get("start_weights")
    return hub.resolve(str(sha)) if sha else None


def _hyperparameters(
    store: MetadataStore,
    decision: Decision,
    settings: Settings,
    folder: Path,
    version: str,
    weights: tuple[WeightsRef | None, WeightsRef | None],
    architecture: str,
    say: Say,
    stores: Config,
) -> dict[str, Any]:
    """The hyperparameters to train with: from metadata, or from a (new) study."""
    domain, start = weights
    tuned = find_hyperparameters(store)
    if decision.action == Action.REUSE and tuned:
        return dict(tuned[0].custom_properties["values"])  # type: ignore[arg-type]
    config = StudyConfig.from_dict(settings.space)
    name = f"{settings.name}-{decision.action.value.lower()}-{version[:8]}-{int(time.time())}"
    url = store.url
    if decision.action == Action.FINE_TUNE and tuned:
        previous = Study.load(str(tuned[0].properties["study"]), url=url)
        study = warm_start(previous, name, narrow=0.5, seed=settings.seed)
    else:
        study = Study.create(
            name, config, url=url, seed=settings.seed, early_stopping=EarlyStopping("median")
        )
    target = TrialTarget(
        TRAINER, fixed={**settings.fixed, "hidden": list(settings.hidden)}, dataset=folder,
        dataset_version=version, init_weights=start, stores=stores,
    )  # fmt: skip
    study.optimize(
        target,
        max_trials=settings.max_trials,
        parallel_trials=settings.parallel_trials,
        root=stores.home / "studies",
        store=store,
    )
    best = record_best(
        study, store, dataset_version=version, init_weights=domain, start_weights=start,
        fixed={**settings.fixed}, architecture_sha256=architecture,
    )  # fmt: skip
    say(f"study {study.name}: best {_short(study.best_trials()[0].metrics)}")
    return dict(best.custom_properties["values"])  # type: ignore[arg-type]


def _gate(
    registry: Registry,
    artifacts: ArtifactStore,
    candidate: ModelVersion,
    folder: Path,
    version: str,
    settings: Settings,
) -> tuple[bool, tuple[str, ...]]:
    """Candidate and champion on the same raw test rows; the gate decides and is recorded."""
    rows = pq.read_table(folder / "raw_test")
    store = registry.store
    evaluations = {}
    champion = registry.aliases(settings.name).get(CHAMPION)
    champion_version = registry.get(f"{settings.name}@{champion}") if champion else None
    for role, model in (("candidate", candidate), ("champion", champion_version)):
        if model is None:
            continue
        bundle, _ = registry.load(str(model))
        evaluations[role] = evaluate(bundle, rows)
        record_evaluation(
            store, artifacts, evaluations[role], model_version=model, dataset_version=version
        )
    decision = gate(evaluations["candidate"], evaluations.get("champion"), settings.gate)
    decide_and_promote(registry, decision, candidate=candidate, champion=champion_version)
    return decision.promote, tuple(decision.reasons)


def _short(metrics: Mapping[str, float]) -> str:
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("validation", "test"))}
    return json.dumps(shown)
