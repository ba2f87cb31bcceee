"""The training pipeline's steps as KFP components, and the training pipeline itself.

Owns the components (read the policy, warm up, pre-train, tune, train, evaluate,
gate) and `training_pipeline`, which ratchet's runner executes locally and kfp's
compiler turns into IR for Kubeflow or Vertex AI. Each component is a thin
wrapper: the work is `ratchet.training`'s, `ratchet.tuning`'s, `ratchet.evaluation`'s
and `ratchet.registry`'s; a component opens the stores the environment names
(`ratchet.config.load_config`) and passes strings, numbers and files between
those functions. Deciding the action (reuse, retune, fine-tune, re-formalize,
stop) is the policy's job, before this pipeline runs; preparing the dataset is
the data pipeline's.

Weights travel between steps as hub references (sha256): the hub is where they
live, so a step re-run anywhere finds them. KFP ships each component's source
on its own, so bodies import what they use and name no module-level constant.
No `from __future__ import annotations` here: kfp reads the annotations as types.
"""

import json
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from ratchet.components.baseline import baseline_step
from ratchet.components.data import IMAGE

#: Hyperparameters every trial and the full training share (JSON object).
FIXED = json.dumps({"epochs": 8, "batch_size": 128, "patience": 2, "threads": 1})
#: No `width`/`layers` here: every trial loads start weights shaped by `hidden`.
SPACE = {
    "parameters": {
        "learning_rate": {"type": "double", "min": 1e-3, "max": 3e-2, "scale": "log"},
        "dropout": {"type": "double", "min": 0.0, "max": 0.3},
    },
    "metrics": [{"name": "validation_loss", "goal": "minimize"}],
}
#: The study (`StudyConfig` as a dict), its budget, and how a fine-tune narrows it.
TUNING = json.dumps(
    {"space": SPACE, "max_trials": 6, "parallel_trials": 1, "narrow": 0.5, "stopping": "median"}
)
WARMUP = json.dumps({"steps": 50, "start_lr": 1e-4})  # `WarmupConfig` fields
PRETRAINING = json.dumps({"rows": 5000, "epochs": 1})  # `PretrainConfig` fields


@dsl.component(base_image=IMAGE)
def read_policy(model_name: str, dataset: str, init_weights: str) -> NamedTuple(  # type: ignore[valid-type]
    "Policy",
    [("action", str), ("dataset_version", str), ("hyperparameters", str), ("study", str),
     ("start_weights", str), ("prepare_weights", bool)],
):  # fmt: skip
    """The action the policy decided for this dataset version, the newest tuned
    hyperparameters (JSON) and their study, and the hub weights (sha256) to start from.

    The start is the new `init_weights` on FINE_TUNE; otherwise the weights the
    hyperparameters' trials started from, else `init_weights`. `prepare_weights` asks
    for warmup and pre-training: on REFORMALIZE, or when none of those is in the hub.
    """
    import collections
    import json
    from pathlib import Path

    from ratchet.artifacts import ArtifactStore, hash_path
    from ratchet.config import load_config
    from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound
    from ratchet.formalize.policy import POLICY_DECISION, Action
    from ratchet.metadata import MetadataStore
    from ratchet.training.hub import Hub
    from ratchet.tuning.results import find_hyperparameters

    config = load_config()
    with MetadataStore.from_config(config) as store:
        folder = str(Path(dataset).absolute())
        known = store.find_artifacts(type="Dataset", uri=folder, newest_first=True, limit=1)
        version = known[0].sha256 if known and known[0].sha256 else hash_path(folder)
        decisions = store.find_artifacts(
            type=POLICY_DECISION, properties={"dataset_version": version}, newest_first=True
        )
        if not decisions:
            raise FailedPrecondition(
                f"no policy decision for dataset version {version[:12]}: run the policy first"
            )
        action = str(decisions[0].properties.get("action"))
        if action not in [a.value for a in Action]:
            raise InvalidArgument(f"unknown policy action {action!r}")
        tuned = find_hyperparameters(store, model=model_name)[:1]
        values = tuned[0].custom_properties["values"] if tuned else {}
        study = str(tuned[0].properties.get("study", "")) if tuned else ""
        tuned_from = str(tuned[0].custom_properties.get("start_weights", "")) if tuned else ""
        hub = Hub(store, ArtifactStore.from_config(config))
        start = ""
        for ref in [init_weights] if action == "FINE_TUNE" else [tuned_from, init_weights]:
            try:
                start = hub.resolve(ref).sha256 if ref else ""
            except NotFound:  # recorded in another store, or deleted: prepare new weights
                continue
            if start:
                break
    Policy = collections.namedtuple(
        "Policy", "action dataset_version hyperparameters study start_weights prepare_weights"
    )
    hyperparameters = json.dumps(values, sort_keys=True)
    prepare = action == "REFORMALIZE" or not start
    return Policy(action, version, hyperparameters, study, start, prepare)


@dsl.component(base_image=IMAGE)
def warmup_step(
    dataset: str, dataset_version: str, hidden: str, initial: str, warmup: str, seed: int
) -> str:
    """Warmed weights (sha256) of the MLP with `hidden` layers, from the `initial` hub
    weights (empty: random); the hub caches them by all of these."""
    import json
    from pathlib import Path

    from ratchet.artifacts import ArtifactStore
    from ratchet.config import load_config
    from ratchet.data.stats import DatasetStatistics
    from ratchet.data.transform import Transform
    from ratchet.metadata import MetadataStore
    from ratchet.training.hub import Hub
    from ratchet.training.models import mlp_spec
    from ratchet.training.task import detect_task
    from ratchet.training.warmup import WarmupConfig, warm_up

    folder = Path(dataset)
    statistics = json.loads((folder / "train_statistics.json").read_text())
    task = detect_task(DatasetStatistics.from_dict(statistics))
    transform = Transform.from_json((folder / "transform.json").read_text())
    spec = mlp_spec(transform, task, hidden=json.loads(hidden))
    config = load_config()
    with MetadataStore.from_config(config) as store:
        hub = Hub(store, ArtifactStore.from_config(config))
        warm = warm_up(
            hub, spec, folder, task, dataset_version=dataset_version, seed=seed,
            config=WarmupConfig(**json.loads(warmup)),
            initial=hub.resolve(initial) if initial else None,
        )  # fmt: skip
    return warm.weights.sha256


@dsl.component(base_image=IMAGE)
def pretrain_step(
    dataset: str, dataset_version: str, start: str, teacher: str, pretraining: str, seed: int
) -> str:
    """`start` pre-trained on synthetic rows labelled by `teacher` (a registry reference,
    e.g. `churn-baseline:baseline`); their sha256. Without a teacher or `pretraining`
    settings (empty), `start` itself."""
    import json
    from pathlib import Path

    from ratchet.artifacts import ArtifactStore
    from ratchet.config import load_config
    from ratchet.data.stats import DatasetStatistics
    from ratchet.metadata import MetadataStore
    from ratchet.registry import Registry
    from ratchet.training.hub import Hub
    from ratchet.training.models import MLPSpec
    from ratchet.training.pretrain import PretrainConfig, pretrain
    from ratchet.training.synthetic import SyntheticGenerator, teacher_labeller
    from ratchet.training.task import detect_task

    if not teacher or not pretraining:
        return start  # no teacher, or no pre-training asked for: the warmed weights go on
    folder = Path(dataset)
    statistics = json.loads((folder / "train_statistics.json").read_text())
    train_statistics = DatasetStatistics.from_dict(statistics)
    task = detect_task(train_statistics)
    config = load_config()
    artifacts = ArtifactStore.from_config(config)
    with MetadataStore.from_config(config) as store:
        hub = Hub(store, artifacts)
        ref = hub.resolve(start)
        bundle, version = Registry(store, artifacts).load(teacher)
        classes = task.classes if task.classification else None
        label = teacher_labeller(bundle.predict_table, classes, seed=seed)

        weights = pretrain(
            hub, MLPSpec.from_dict(hub.spec_of(ref)), folder, task, start=ref,
            generator=SyntheticGenerator.from_statistics(train_statistics, labeller=label),
            # The teacher's content, not only its name, keys the cache.
            labeller_name=f"{version}:{version.sha256[:12]}", dataset_version=dataset_version,
            config=PretrainConfig(**json.loads(pretraining)), seed=seed,
            soft_targets=bundle.predict_transformed if task.classification else None,
        )  # fmt: skip
    return weights.sha256


@dsl.component(base_image=IMAGE)
def tune_step(
    model_name: str, action: str, dataset: str, dataset_version: str, hidden: str, fixed: str,
    tuning: str, init_weights: str, start: str, study: str, seed: int,
) -> str:  # fmt: skip
    """A study of the tabular trainer from the `start` weights; the best hyperparameters
    (JSON, `fixed` merged in), recorded as tuned for the domain's `init_weights` (what the
    policy compares). FINE_TUNE warm-starts from `study`, narrowed."""
    import json
    import time
    from pathlib import Path

    from ratchet.artifacts import ArtifactStore
    from ratchet.config import load_config
    from ratchet.metadata import MetadataStore
    from ratchet.training.hub import Hub
    from ratchet.tuning.results import record_best
    from ratchet.tuning.space import StudyConfig
    from ratchet.tuning.study import EarlyStopping, Study
    from ratchet.tuning.trials import TrialTarget
    from ratchet.tuning.warmstart import warm_start

    settings, shared = json.loads(tuning), json.loads(fixed)
    config = load_config()
    with MetadataStore.from_config(config) as store:
        hub = Hub(store, ArtifactStore.from_config(config))
        weights = hub.resolve(start) if start else None
        name = f"{action.lower()}-{dataset_version[:8]}-{time.time_ns()}"  # names are for good
        if action == "FINE_TUNE" and study:
            narrow = float(settings.get("narrow", 0.5))
            tuner = warm_start(Study.load(study, url=store.url), name, narrow=narrow, seed=seed)
        else:
            stopping = EarlyStopping(str(settings.get("stopping", "median")))
            space = StudyConfig.from_dict(settings["space"])
            tuner = Study.create(name, space, url=store.url, seed=seed, early_stopping=stopping)
        target = TrialTarget(
            "module:ratchet.training.tabular", fixed={**shared, "hidden": json.loads(hidden)},
            dataset=Path(dataset), dataset_version=dataset_version, init_weights=weights,
            stores=config,
        )  # fmt: skip
        tuner.optimize(
            target, max_trials=int(settings.get("max_trials", 6)), store=store,
            parallel_trials=int(settings.get("parallel_trials", 1)), root=config.home / "studies",
        )  # fmt: skip
        # The policy compares this to decide on re-formalizing: the weights' architecture.
        shape = store.get_artifact(weights.artifact_id).properties if weights else {}
        best = record_best(
            tuner, store, dataset_version=dataset_version, fixed=shared, start_weights=weights,
            init_weights=hub.resolve(init_weights) if init_weights else None,
            architecture_sha256=str(shape["architecture_sha256"]) if weights else None,
            model=model_name,
        )  # fmt: skip
    return json.dumps(best.custom_properties["values"], sort_keys=True)


@dsl.component(base_image=IMAGE)
def keep_value(value: str) -> str:
    """`value` unchanged: the Else branch's output where a `dsl.OneOf` needs one."""
    return value


@dsl.component(base_image=IMAGE)
def train_step(
    model_name: str, dataset: str, dataset_version: str, hidden: str, fixed: str,
    hyperparameters: str, start: str, model: Output[Model],
) -> None:  # fmt: skip
    """Full training with the script the trials ran (early stopping, TensorBoard under a
    tracking run of experiment `model_name`) from `start`; the bundle goes to `model`."""
    import hashlib
    import json
    import math
    import time
    from pathlib import Path

    from ratchet import datasets
    from ratchet.config import load_config
    from ratchet.errors import FailedPrecondition
    from ratchet.metadata import MetadataStore
    from ratchet.tracking import Tracker
    from ratchet.training.contract import TrainingContext
    from ratchet.training.jobs import run_job

    tuned = json.loads(hyperparameters)
    values = {**json.loads(fixed), **tuned, "hidden": json.loads(hidden)}
    if start:
        values["init_weights"] = start
    # `record_best` hashes the values it records this way: the lineage finds them.
    tuned_sha = hashlib.sha256(json.dumps(tuned, sort_keys=True).encode()).hexdigest()
    config = load_config()
    with MetadataStore.from_config(config) as store:
        inputs = {}
        for role, kind, sha in (
            ("dataset", "Dataset", dataset_version),
            ("hyperparameters", "Hyperparameters", tuned_sha),
        ):
            found = store.find_artifacts(type=kind, sha256=sha, newest_first=True, limit=1)
            if found:
                inputs[role] = found[0]
        if "dataset" in inputs:  # the statistics and transform the model was built with
            inputs.update(datasets.version_parts(store, inputs["dataset"]))
        tracker = Tracker(store, model_name, run_root=config.home / "runs")
        try:
            run = tracker.start_run(f"train-{dataset_version[:8]}-{time.time_ns()}")
            run.enable_tensorboard()
            run.log_params({k: v for k, v in values.items() if isinstance(v, int | float | str)})
            result = run_job(
                "module:ratchet.training.tabular", values, store=store, inputs=inputs, run=run,
                context=TrainingContext(Path(model.path), dataset=dataset, stores=config),
            )  # fmt: skip
            run.end("COMPLETE" if result.state == "COMPLETE" else "FAILED")
        finally:
            tracker.close()
    if result.state != "COMPLETE":
        raise FailedPrecondition(f"training ended {result.state}: {result.reason} ({result.logs})")
    model.metadata["metrics"] = {k: v for k, v in result.metrics.items() if math.isfinite(v)}


@dsl.component(base_image=IMAGE)
def evaluate_step(
    dataset: str, slices: str, model: Input[Model], evaluation: Output[Artifact],
    metrics: Output[Metrics],
) -> None:  # fmt: skip
    """The model on the dataset's raw test rows, overall and on `slices` (JSON, as
    `ratchet.evaluation.evaluate` takes them); the `Evaluation` as JSON."""
    import json
    import math
    from pathlib import Path

    import pyarrow.parquet as pq

    from ratchet.evaluation import evaluate
    from ratchet.training.bundle import load_bundle

    rows = pq.read_table(Path(dataset) / "raw_test")
    result = evaluate(load_bundle(Path(model.path)), rows, slices=json.loads(slices) or None)
    with open(evaluation.path, "w") as f:
        json.dump(result.to_dict(), f)
    evaluation.metadata["fingerprint"] = result.fingerprint
    for name, value in result.overall.metrics.items():
        if isinstance(value, int | float) and math.isfinite(value):
            metrics.log_metric(name, value)


@dsl.component(base_image=IMAGE)
def gate_step(
    model_name: str, dataset: str, dataset_version: str, action: str, slices: str, gate: str,
    candidate: Input[Model], candidate_evaluation: Input[Artifact],
) -> NamedTuple("Gate", [("promoted", bool), ("version", str), ("reasons", str)]):  # type: ignore[valid-type]  # fmt: skip
    """Register the candidate, evaluate the champion on the same rows, gate (`GateConfig`
    fields as JSON), promote or reject; all recorded. The same bundle is registered once;
    a candidate that is the champion already stays so."""
    import collections
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    from ratchet import evaluation
    from ratchet.artifacts import ArtifactStore, hash_path
    from ratchet.config import load_config
    from ratchet.metadata import MetadataStore
    from ratchet.registry import Registry

    Gate = collections.namedtuple("Gate", "promoted version reasons")
    with open(candidate_evaluation.path) as f:
        ours = evaluation.Evaluation.from_dict(json.load(f))
    config = load_config()
    artifacts = ArtifactStore.from_config(config)
    with MetadataStore.from_config(config) as store:
        registry = Registry(store, artifacts)
        sha = hash_path(candidate.path)
        known = [v for v in registry.versions(model_name) if v.sha256 == sha]
        if known:
            version = known[0]
        else:
            inputs = {}
            for role, found in (
                ("dataset", store.find_artifacts(type="Dataset", sha256=dataset_version)),
                ("model", store.find_artifacts(type="Model", uri=candidate.path)),  # its job's
            ):
                if found:
                    inputs[role] = found[-1]
            version = registry.register(
                model_name, Path(candidate.path), inputs=inputs, aliases=("candidate",),
                labels={"kind": "custom", "decision": action},
            )  # fmt: skip
        number = registry.aliases(model_name).get("champion")
        if number == version.version:
            return Gate(True, str(version), "already the champion")
        champion = registry.get(f"{model_name}@{number}") if number is not None else None
        theirs = None
        if champion is not None:  # on the candidate's rows: only such evaluations compare
            rows = pq.read_table(Path(dataset) / "raw_test")
            bundle = registry.load(str(champion))[0]
            theirs = evaluation.evaluate(bundle, rows, slices=json.loads(slices) or None)
        for model, result in ((version, ours), (champion, theirs)):
            if model is None or result is None:
                continue
            if not evaluation.find_evaluations(
                store, model_name, model.version, fingerprint=ours.fingerprint
            ):
                evaluation.record_evaluation(
                    store, artifacts, result, model_version=model, dataset_version=dataset_version
                )
        decision = evaluation.gate(ours, theirs, evaluation.GateConfig(**json.loads(gate)))
        evaluation.decide_and_promote(registry, decision, candidate=version, champion=champion)
    return Gate(decision.promote, str(version), "; ".join(decision.reasons))


@dsl.pipeline(name="ratchet-training")
def training_pipeline(
    dataset: str, model_name: str, hidden: str = "[32]", fixed: str = FIXED,
    tuning: str = TUNING, warmup: str = WARMUP, pretraining: str = PRETRAINING,
    teacher: str = "", baseline_budget: float = 0.0, init_weights: str = "", slices: str = "[]",
    gate: str = "{}", seed: int = 0,
) -> None:  # fmt: skip
    """Policy > weights (warmup, pre-training) > tuning > full training > evaluation > gate.

    `dataset` is a prepared dataset folder (a registered version's, for lineage);
    `hidden` (a JSON list) is the architecture; the JSON settings are the fields of
    the library's configs. Nothing trains on STOP; REUSE trains without tuning. When
    weights are prepared, the synthetic rows are labelled by `teacher` (a registry
    reference) or else by an AutoML baseline run for `baseline_budget` seconds (0: none).
    """
    policy = read_policy(model_name=model_name, dataset=dataset, init_weights=init_weights)
    policy.set_caching_options(False)  # its inputs never change; its answer does
    action, version = policy.outputs["action"], policy.outputs["dataset_version"]
    # The actions are `ratchet.formalize.policy.Action`'s values.
    with dsl.If(action != "STOP"):
        # KFP reads the condition off the comparison: `== True` is what it needs.
        with dsl.If(policy.outputs["prepare_weights"] == True):  # noqa: E712
            warm = warmup_step(
                dataset=dataset, dataset_version=version, hidden=hidden, initial=init_weights,
                warmup=warmup, seed=seed,
            )  # fmt: skip
            taught = baseline_step(
                model_name=model_name, dataset=dataset, dataset_version=version,
                teacher=teacher, budget=baseline_budget, seed=seed,
            )  # fmt: skip
            prepared = pretrain_step(
                dataset=dataset, dataset_version=version, start=warm.output,
                teacher=taught.output, pretraining=pretraining, seed=seed,
            )  # fmt: skip
        with dsl.Else():
            kept = keep_value(value=policy.outputs["start_weights"])
        start = dsl.OneOf(prepared.output, kept.output)
        with dsl.If(action != "REUSE"):  # what is left: RETUNE, FINE_TUNE, REFORMALIZE
            tuned = tune_step(
                model_name=model_name, action=action, dataset=dataset, dataset_version=version,
                hidden=hidden, fixed=fixed, tuning=tuning, init_weights=init_weights, start=start,
                study=policy.outputs["study"], seed=seed,
            )  # fmt: skip
        with dsl.Else():
            reused = keep_value(value=policy.outputs["hyperparameters"])
        trained = train_step(
            model_name=model_name, dataset=dataset, dataset_version=version, hidden=hidden,
            fixed=fixed, hyperparameters=dsl.OneOf(tuned.output, reused.output), start=start,
        )  # fmt: skip
        model = trained.outputs["model"]
        evaluated = evaluate_step(dataset=dataset, slices=slices, model=model)
        gated = gate_step(
            model_name=model_name, dataset=dataset, dataset_version=version, action=action,
            slices=slices, gate=gate, candidate=model,
            candidate_evaluation=evaluated.outputs["evaluation"],
        )  # fmt: skip
        gated.set_caching_options(False)  # the champion it faces moves between runs
