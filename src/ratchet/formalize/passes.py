"""One formalization pass: new data in, a decision with its evidence, maybe a new champion out.

Owns `run_pass`, which runs ratchet's two pipelines around the policy: the data
pipeline (`ratchet.components.data`: statistics, validation against the first
version's schema, drift, split, transform, export, the next dataset version),
then the policy's decision (recorded with its evidence), then the training
pipeline (`ratchet.components.training`: weights, tuning or fine-tuning as the
decision says, full training, evaluation, the gate). Both run through ratchet's
KFP runner, so every step is an execution in the metadata store.

The training pipeline runs as the *formalized* pipeline: kfp's IR with this
model's settings as its parameters' defaults. Its content hash (plus the git
commit) is the pipeline version, recorded once; changing the architecture
changes the settings, so re-formalizing emits a new version. The controller
(`controller`) calls `run_pass` when data arrives; `ratchet formalize run` once.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ratchet import datasets, pipelines
from ratchet.artifacts import ArtifactStore
from ratchet.components.data import data_pipeline
from ratchet.components.training import training_pipeline
from ratchet.components.versioning import PipelineVersion, pipeline_version, record_pipeline_version
from ratchet.config import Config
from ratchet.data.engines.local import read_prepared
from ratchet.data.io import open_source
from ratchet.data.schema import Anomaly, Schema, validate
from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.evaluation import GateConfig, find_decisions
from ratchet.formalize.policy import Action, Decision, PolicyInputs, decide, record_decision
from ratchet.metadata import Artifact, MetadataStore
from ratchet.pipelines import TaskState
from ratchet.pipelines.spec import load
from ratchet.registry import ModelVersion, Registry
from ratchet.training.hub import Hub
from ratchet.training.models import mlp_spec
from ratchet.training.pretrain import PretrainConfig
from ratchet.training.task import detect_task
from ratchet.training.warmup import WarmupConfig
from ratchet.tuning.results import find_hyperparameters

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
    hidden: tuple[int, ...] = (64, 64)  # the architecture (its hash decides re-formalizing)
    fixed: dict[str, Any] = field(default_factory=lambda: Settings.fixed_defaults())
    space: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SPACE))
    max_trials: int = 6
    parallel_trials: int = 2
    baseline_budget: float = 10.0
    warmup: WarmupConfig = field(default_factory=lambda: WarmupConfig(steps=50, start_lr=1e-4))
    # Distilling the baseline takes a few hundred steps on soft targets to reach its ranking,
    # on synthetic rows and as many of the train split's (without them the student trailed
    # the teacher's ROC AUC by 0.02 on the taxi data; with them, by under 0.01).
    pretrain: PretrainConfig | None = field(
        default_factory=lambda: PretrainConfig(
            rows=20_000, epochs=10, learning_rate=3e-3, real_rows=20_000
        )
    )
    init_weights: str | None = None  # a hub reference to domain-specific weights
    gate: GateConfig = field(default_factory=GateConfig)
    error_budget: int = 0  # schema anomalies allowed before the pass stops
    drift_thresholds: dict[str, float] = field(default_factory=dict)  # over the defaults
    seed: int = 0

    @staticmethod
    def fixed_defaults() -> dict[str, Any]:
        """The trainer's hyperparameters every trial and the full training share."""
        return {"epochs": 8, "batch_size": 128, "patience": 2, "threads": 1}

    @classmethod
    def from_dict(cls, name: str, label: str, values: Mapping[str, Any]) -> Settings:
        """Settings from plain values (a YAML file's), checked: one-line errors."""
        known = set(cls.__dataclass_fields__) - {"name", "label"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidArgument(f"unknown setting {unknown[0]!r}; settings are {sorted(known)}")
        given = dict(values)
        for key, kind in (("warmup", WarmupConfig), ("pretrain", PretrainConfig),
                          ("gate", GateConfig)):  # fmt: skip
            if isinstance(given.get(key), Mapping):
                try:
                    given[key] = kind(**given[key])
                except TypeError as e:
                    raise InvalidArgument(f"bad {key} settings: {e}") from None
        if "hidden" in given:
            given["hidden"] = tuple(given["hidden"])
        try:
            return cls(name=name, label=label, **given)
        except TypeError as e:
            raise InvalidArgument(f"bad settings: {e}") from None

    def pipeline_parameters(self) -> dict[str, Any]:
        """The training pipeline's parameters these settings fix (its JSON strings).

        Not `init_weights`: domain weights are an argument of each run (new ones
        fine-tune the same pipeline), while these are what makes the pipeline's version.
        """
        tuning = {
            "space": self.space, "max_trials": self.max_trials, "narrow": 0.5,
            "parallel_trials": self.parallel_trials, "stopping": "median",
        }  # fmt: skip
        return {
            "hidden": json.dumps(list(self.hidden)),
            "fixed": json.dumps(self.fixed, sort_keys=True),
            "tuning": json.dumps(tuning, sort_keys=True),
            "warmup": json.dumps(asdict(self.warmup), sort_keys=True),
            "pretraining": json.dumps(asdict(self.pretrain)) if self.pretrain else "",
            "baseline_budget": float(self.baseline_budget),
            "gate": json.dumps(asdict(self.gate), sort_keys=True),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class PassResult:
    dataset: Artifact
    decision: Decision
    candidate: ModelVersion | None = None
    promoted: bool = False
    reasons: tuple[str, ...] = ()
    pipeline: PipelineVersion | None = None  # the training pipeline's version that ran


Say = Callable[[str], None]


def run_pass(
    config: Config, source: str, settings: Settings, *, say: Say = print, experiment: bool = False
) -> PassResult:
    """Run the data pipeline on `source`, decide, run the training pipeline, report the gate.

    An `experiment` runs the whole flow whatever the policy would reuse (baseline,
    warmup, pre-training, a full study): it is recorded as a REFORMALIZE decision
    naming the experiment, with the policy's own reasons beside it. STOP still stops.
    """
    open_source(source)  # a missing or unreadable source fails here, before anything runs
    data = _run(data_pipeline, {
        "source": source, "name": settings.name, "label": settings.label,
        "key": settings.key or "",
    }, config, caching=False)  # fmt: skip  # a path's contents may change: never cached
    folder, version = Path(data.outputs["folder"]), str(data.outputs["version"])
    prepared = read_prepared(folder)
    say(f"dataset {settings.name}@{version[:12]}: {dict(prepared.rows)}")
    artifacts = ArtifactStore.from_config(config)
    with MetadataStore.from_config(config) as store:
        dataset = store.find_artifacts(type="Dataset", sha256=version, newest_first=True)[0]
        anomalies = _anomalies(datasets.find_versions(store, settings.name), version, prepared)
        task = detect_task(prepared.train_statistics)
        spec = mlp_spec(prepared.transform, task, hidden=settings.hidden)
        hub = Hub(store, artifacts)
        domain = hub.resolve(settings.init_weights) if settings.init_weights else None
        inputs = PolicyInputs(
            statistics=prepared.statistics,
            anomalies=tuple(anomalies),
            error_budget=settings.error_budget,
            architecture_sha256=spec.sha256,
            init_weights_sha256=domain.sha256 if domain is not None else None,
            thresholds=settings.drift_thresholds,
            model=settings.name,
        )
        decision = decide(store, artifacts, inputs)
        if experiment and decision.action != Action.STOP:
            reasons = ("an experiment runs the whole flow", *decision.reasons)
            decision = Decision(Action.REFORMALIZE, reasons, decision.evidence)
        tuned = find_hyperparameters(store, model=settings.name)
        record_decision(
            store, artifacts, decision, dataset=dataset, hyperparameters=tuned[0] if tuned else None
        )
        say(f"decision: {decision.action.value} ({'; '.join(decision.reasons)})")
        if decision.action == Action.STOP:
            return PassResult(dataset, decision, reasons=decision.reasons)
        formalized, pipeline = _formalized_pipeline(store, config, settings)
        if decision.action == Action.REFORMALIZE:
            say(f"training pipeline {pipeline.pipeline} version {pipeline.short_id}")
        seen = [d.id for d in find_decisions(store, settings.name)[:1]]
    arguments = {
        "dataset": str(folder), "model_name": settings.name,
        "init_weights": settings.init_weights or "",
    }  # fmt: skip
    trained = _run(formalized, arguments, config, caching=True)
    say(f"training pipeline ran: {_steps(trained)}")
    with MetadataStore.from_config(config) as store:
        newest = find_decisions(store, settings.name)[:1]
        if not newest or [newest[0].id] == seen:
            say("the candidate is the champion already: nothing to gate")
            kept = ("already the champion",)
            return PassResult(dataset, decision, reasons=kept, pipeline=pipeline)
        gated = newest[0]
        candidate = Registry(store, artifacts).get(
            f"{settings.name}@{gated.properties['candidate_version']}"
        )
    promoted = bool(gated.properties["promote"])
    reasons = tuple(str(r) for r in gated.custom_properties.get("reasons", []))  # type: ignore[union-attr]
    say(("promoted " if promoted else "kept the champion over ") + f"{candidate}: {reasons[0]}")
    return PassResult(dataset, decision, candidate, promoted, reasons, pipeline)


def _run(
    pipeline: object, arguments: Mapping[str, Any], config: Config, *, caching: bool
) -> pipelines.PipelineRun:
    run = pipelines.run(pipeline, arguments, config=config, enable_caching=caching)
    if run.state != "SUCCEEDED":
        task, error = next(iter(run.errors.items()), ("?", "no error recorded"))
        last = error.strip().splitlines()[-1] if error.strip() else error
        raise FailedPrecondition(f"pipeline {run.pipeline} failed at {task}: {last}")
    return run


def _steps(run: pipelines.PipelineRun) -> str:
    """The leaf steps that ran or came from the cache, in the order the run lists them."""
    done = {TaskState.COMPLETE: "", TaskState.CACHED: " (cached)"}
    steps = [
        path.rsplit("/", 1)[-1] + done[state]
        for path, state in run.tasks.items()
        if state in done and not path.rsplit("/", 1)[-1].startswith(("condition", "keep-value"))
    ]
    return ", ".join(steps)


def _formalized_pipeline(
    store: MetadataStore, config: Config, settings: Settings
) -> tuple[dict[str, Any], PipelineVersion]:
    """The training pipeline's IR with `settings` as its defaults, its version recorded.

    The same settings give the same IR, hence the same version (recorded once); the
    spec is kept under the store's home so a cluster can be given that very file.
    """
    ir = copy.deepcopy(dict(load(training_pipeline).ir))
    declared = ir["root"]["inputDefinitions"]["parameters"]
    for name, value in settings.pipeline_parameters().items():
        declared[name]["defaultValue"] = value
    version = pipeline_version(ir, where=Path(__file__).parent)
    folder = config.home / "pipelines" / settings.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"training-{version.sha256[:12]}.json").write_text(json.dumps(ir, sort_keys=True))
    record_pipeline_version(store, f"{settings.name}-training", version)
    return ir, version


def _anomalies(versions: list[Artifact], version: str, prepared: Any) -> list[Anomaly]:
    """The new data's anomalies against the schema of the dataset's first version.

    Values outside the observed range are what drift detection is for (the policy
    retunes on it); they do not count against the error budget.
    """
    older = [v for v in versions if v.sha256 != version]
    if not older:
        return []
    schema = Schema.load(Path(older[-1].uri) / "schema.yaml")
    return [a for a in validate(prepared.statistics, schema) if a.kind != "out_of_range"]
