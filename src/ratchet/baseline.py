"""The AutoML baseline: FLAML within a time budget on a dataset's own split, a floor beside it.

Owns `run_baseline`: FLAML's search fits on the dataset's train split and scores
every trial on its validation split, the very rows the custom models are scored
on (`X_val`: never FLAML's own split or CV, no refit on train + validation, no
subsampling, no rare-class augmentation), optimising `ratchet.evaluation`'s
definition of the metric; the best model is saved as a serving bundle, and beside
it a floor: the majority class (with the train split's class frequencies as its
probabilities) or the mean, then the classic logistic or linear model. It also
owns the two bundle frameworks this adds (`flaml`, `constant`), which
`ratchet.training.bundle.load_bundle` hands to `load_predictor`, and
`record_baseline`: each model a version of one registered model, labelled by
kind, the AutoML one under the `baseline` alias, all linked to the Dataset.

It does not prepare data (`ratchet.data`), train custom models
(`ratchet.training`), define metrics, evaluate on slices or gate
(`ratchet.evaluation`), or print anything (`ratchet.cli.baseline`).
"""

from __future__ import annotations

import json
import math
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ratchet.data.split import SPLITS
from ratchet.data.transform import NUMERIC, Transform
from ratchet.datasets import DATASET
from ratchet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ratchet.evaluation.metrics import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    classification_metrics,
    regression_metrics,
)
from ratchet.metadata import Artifact
from ratchet.registry import BASELINE, ModelVersion, Registry
from ratchet.training.bundle import MANIFEST, Predictor, load_bundle, write_manifest
from ratchet.training.classic import feature_matrix, score, train_classic
from ratchet.training.prepared import Columns, describe, labelled_rows
from ratchet.training.task import Task

Array = npt.NDArray[Any]
Split = tuple[Columns, Array]  # transformed feature columns and encoded labels

AUTOML, FLOOR_MAJORITY, FLOOR_LINEAR = "automl", "floor-majority", "floor-linear"
FLAML, CONSTANT = "flaml", "constant"  # the bundle frameworks this module loads
FLAML_FILE = "model.joblib"


#: The metrics FLAML may optimise: `ratchet.evaluation`'s, so the search, the stored
#: evaluations and the gate share one definition (ECE is left out: a constant predictor
#: is perfectly calibrated).
METRICS = {
    True: tuple(m for m in CLASSIFICATION_METRICS if m != "ece"),
    False: REGRESSION_METRICS,
}  # by task.classification
DEFAULT_METRIC = {True: "log_loss", False: "rmse"}  # by task.classification
#: FLAML's names of the estimators it may search, per task.classification: all run on
#: installed dependencies (catboost and FLAML's `automl` extra are not ratchet's). Not
#: lrl2: FLAML fits it under a process-wide address-space limit and a SIGALRM timer, and
#: silently swaps a fit that runs out of either for a constant model.
ESTIMATORS = {
    True: ("lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "lrl1", "histgb"),
    False: ("lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "enet", "histgb"),
}
#: Searched unless told otherwise: the gradient boosters, the forests and (for
#: classification) L1 logistic regression, FLAML's own default list minus catboost and sgd.
DEFAULT_ESTIMATORS = {True: ESTIMATORS[True][:6], False: ESTIMATORS[False][:5]}


@dataclass(frozen=True)
class BaselineModel:
    kind: str  # AUTOML, FLOOR_MAJORITY or FLOOR_LINEAR
    estimator: str  # FLAML's best estimator, "majority"/"mean", or the classic trainer
    folder: Path  # its serving bundle
    metrics: Mapping[str, float]  # validation_* and test_*


@dataclass(frozen=True)
class BaselineResult:
    task: Task
    metric: str
    models: tuple[BaselineModel, ...]  # the AutoML model first, then the floor
    validation_rows: int  # the rows FLAML scored every trial on
    trials: int
    best_config: Mapping[str, Any]

    @property
    def automl(self) -> BaselineModel:
        return self.models[0]


def run_baseline(
    dataset: Path,
    output: Path,
    *,
    budget_seconds: float = 60,
    metric: str | None = None,
    seed: int = 0,
    n_jobs: int = -1,
    estimators: Sequence[str] | None = None,
) -> BaselineResult:
    """Search with FLAML for `budget_seconds`, bundle the best model and the floor in `output`.

    `dataset` is a prepared dataset folder; `output` (absent or empty) gets one bundle
    per model: `automl/`, `floor-majority/`, `floor-linear/`. `metric` defaults to
    log_loss (classification) or rmse (regression); `estimators` to
    `DEFAULT_ESTIMATORS`; `n_jobs` -1 uses every core. The search is seeded, but how
    many trials fit in the budget depends on the machine, so results may differ run
    to run. Pickled models are written and, by `load_predictor`, read: trusted
    folders only.
    """
    if isinstance(budget_seconds, bool) or not isinstance(budget_seconds, int | float):
        raise InvalidArgument(f"budget must be a number of seconds, got {budget_seconds!r}")
    if not budget_seconds > 0 or not math.isfinite(budget_seconds):
        raise InvalidArgument(f"budget must be more than 0 seconds, got {budget_seconds}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidArgument(f"seed must be an int, got {seed!r}")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or not (n_jobs == -1 or n_jobs > 0):
        raise InvalidArgument(f"n_jobs must be -1 (every core) or a positive int, got {n_jobs!r}")
    dataset, output = Path(dataset), Path(output)
    task, transform = describe(dataset)
    metric = check_metric(task, metric)
    chosen = _check_estimators(task, estimators)
    if output.exists() and any(output.iterdir()):
        raise AlreadyExists(f"{output} is not empty; give a new folder for the baseline")
    features = tuple(f.name for f in transform.features)
    widths = {f.name: f.width for f in transform.features if f.group != NUMERIC}
    splits = {name: labelled_rows(dataset, name, task, features) for name in SPLITS}
    train, validation = splits["train"], splits["validation"]
    if train is None or validation is None:
        raise InvalidArgument(f"{dataset} needs labelled train and validation rows")
    _check_classes(task, metric, train[1], validation[1])
    frames = [(_frame(x, features, widths), y) for x, y in (train, validation)]
    automl, objective = _search(task, metric, frames, budget_seconds, chosen, seed, n_jobs)
    rows = max(objective.rows)
    search = {
        "budget_seconds": budget_seconds,
        "metric": metric,
        "estimators": list(chosen),
        "seed": seed,
        "trials": objective.calls,
        "validation_rows": rows,
        "best_config": _plain(automl.best_config),
        "best_loss_per_estimator": _plain(automl.best_loss_per_estimator),
    }
    _save_flaml(output / AUTOML, automl, task=task, transform=transform, search=search)
    constant = "majority" if task.classification else "mean"
    write_manifest(
        output / FLOOR_MAJORITY,
        framework=CONSTANT,
        transform=transform,
        task=task,
        extra={"kind": constant, "values": _constant(task, train[1]).tolist()},
    )
    linear = "sklearn-logistic" if task.classification else "sklearn-linear"
    threads = None if n_jobs == -1 else n_jobs
    train_classic(
        linear, {}, dataset=dataset, model_dir=output / FLOOR_LINEAR, seed=seed, threads=threads
    )
    made = {AUTOML: str(automl.best_estimator), FLOOR_MAJORITY: constant, FLOOR_LINEAR: linear}
    models = tuple(
        BaselineModel(kind, estimator, output / kind, _score(output / kind, task, splits))
        for kind, estimator in made.items()
    )
    return BaselineResult(
        task=task,
        metric=metric,
        models=models,
        validation_rows=rows,
        trials=objective.calls,
        best_config=_plain(automl.best_config),
    )


def record_baseline(
    registry: Registry, result: BaselineResult, *, name: str, dataset: Artifact | None = None
) -> list[ModelVersion]:
    """Register each model as a version of `name` (the AutoML one last, under `baseline`).

    Labels: `kind` (automl, floor-majority, floor-linear), `estimator`, `metric`,
    `task` and `run` (shared by the versions of one baseline run); `dataset` (a
    recorded Dataset version) becomes each registration's input, the lineage.
    Returns the versions in `result.models`' order.
    """
    if dataset is not None and (dataset.type != DATASET or dataset.id is None):
        raise InvalidArgument(f"dataset must be a recorded {DATASET} artifact, got {dataset.type}")
    common = {"metric": result.metric, "task": result.task.kind, "run": uuid.uuid4().hex[:12]}
    inputs = {"dataset": dataset} if dataset is not None else None
    versions: dict[str, ModelVersion] = {}
    for model in (*result.models[1:], result.models[0]):
        versions[model.kind] = registry.register(
            name,
            model.folder,
            labels={**common, "kind": model.kind, "estimator": model.estimator},
            inputs=inputs,
            aliases=(BASELINE,) if model.kind == AUTOML else (),
        )
    return [versions[model.kind] for model in result.models]


def check_metric(task: Task, metric: str | None) -> str:
    """`metric`, or the task's default, checked against the task."""
    if metric is None:
        return DEFAULT_METRIC[task.classification]
    fitting = METRICS[task.classification]
    if metric not in fitting:
        known = f" for {task.kind}" if metric in METRICS[not task.classification] else ""
        raise InvalidArgument(f"unknown metric {metric!r}{known}; one of {', '.join(fitting)}")
    return metric


def load_predictor(folder: Path, manifest: Mapping[str, Any], task: Task) -> Predictor:
    """The predictor of a `flaml` or `constant` bundle (a FLAML model is unpickled)."""
    framework = manifest.get("framework")
    try:
        if framework == CONSTANT:
            values = np.asarray(manifest["values"], dtype=np.float64)
            return _ConstantPredictor(task, values)
        if framework == FLAML:
            import joblib  # type: ignore[import-untyped, unused-ignore]

            features = tuple(str(name) for name in manifest["features"])
            widths = {str(k): int(v) for k, v in manifest["categorical"].items()}
            path = folder / manifest["file"]
            if not path.is_file():
                raise NotFound(f"{folder} has {MANIFEST} but not its model file {path.name}")
            return _FlamlPredictor(task, features, widths, joblib.load(path))
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidArgument(
            f"{folder / MANIFEST} does not describe a {framework} model: {e!r}"
        ) from e
    raise InvalidArgument(f"{folder}: {framework!r} is not a baseline framework")


class _ConstantPredictor:
    def __init__(self, task: Task, values: npt.NDArray[np.float64]) -> None:
        self.task, self.values = task, values

    def predict(self, features: Mapping[str, Array]) -> npt.NDArray[np.float64]:
        rows = len(next(iter(features.values()))) if features else 0
        if self.task.classification:
            return np.tile(self.values, (rows, 1))
        return np.full(rows, self.values[0])


class _FlamlPredictor:
    """FLAML's best model behind its own input preparation (its DataTransformer)."""

    def __init__(
        self, task: Task, features: tuple[str, ...], widths: Mapping[str, int], saved: Any
    ) -> None:
        self.task, self.features, self.widths = task, features, widths
        self.transformer, self.estimator = saved["transformer"], saved["estimator"]
        self.classes = np.asarray(saved["classes"], dtype=np.int64)

    def predict(self, features: Mapping[str, Array]) -> npt.NDArray[np.float64]:
        frame = _frame(features, self.features, self.widths)
        if not len(frame):  # FLAML's transformer refuses an empty batch; a server may send one
            return np.zeros((0, len(self.task.classes)) if self.task.classification else 0)
        x = self.transformer.transform(frame)
        if not self.task.classification:
            return np.asarray(self.estimator.predict(x), dtype=np.float64)
        # A class missing from the training split has no column of its own: probability 0.
        out = np.zeros((len(x), len(self.task.classes)))
        out[:, self.classes] = np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
        return out


class _Objective:
    """FLAML's metric: ratchet's definition on the task's class ids, counting what it scored."""

    def __init__(self, task: Task, metric: str, classes: Array) -> None:
        self.task, self.metric, self.classes = task, metric, classes
        self.calls, self.rows = 0, set[int]()

    def __call__(
        self, x_val: Any, y_val: Any, estimator: Any, *args: Any, **kwargs: Any
    ) -> tuple[float, dict[str, float]]:
        self.calls += 1
        self.rows.add(len(x_val))
        if self.task.classification:
            # FLAML numbers the classes the train split holds 0..m-1, in order.
            targets = self.classes[np.asarray(y_val, dtype=np.int64)]
            predictions = np.zeros((len(x_val), len(self.task.classes)))
            predictions[:, self.classes] = estimator.predict_proba(x_val)
        else:
            targets = np.asarray(y_val, dtype=np.float64)
            predictions = np.asarray(estimator.predict(x_val), dtype=np.float64)
        value = _metrics(self.task, targets, predictions)[self.metric]
        loss = 1.0 - value if HIGHER_IS_BETTER[self.metric] else value
        if not math.isfinite(loss):  # rows that leave the metric undefined rank last
            loss = math.inf
        return loss, {self.metric: value}


def _search(
    task: Task,
    metric: str,
    frames: list[tuple[pd.DataFrame, Array]],  # train, then validation
    budget: float,
    estimators: tuple[str, ...],
    seed: int,
    n_jobs: int,
) -> tuple[Any, _Objective]:
    from flaml.automl.automl import AutoML
    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped, unused-ignore]

    (x_train, y_train), (x_val, y_val) = frames
    classes = np.unique(y_train) if task.classification else np.zeros(0, dtype=np.int64)
    objective = _Objective(task, metric, classes)
    automl: Any = AutoML()  # type: ignore[no-untyped-call]
    with warnings.catch_warnings():
        # FLAML 2.7 calls pandas APIs that pandas 3 deprecates, and the linear trials it
        # configures may stop before converging (they then score worse): nothing a user
        # can act on.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"flaml\.")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        automl.fit(
            x_train,
            y_train,
            X_val=x_val,
            y_val=y_val,
            task="classification" if task.classification else "regression",
            metric=objective,
            time_budget=budget,
            estimator_list=list(estimators),
            eval_method="holdout",
            # The model scored on validation is the one kept: never refit on train +
            # validation, never fit on a sample, never on duplicated rare-class rows.
            retrain_full=False,
            sample=False,
            auto_augment=False,
            seed=seed,
            n_jobs=n_jobs,
            verbose=0,
            log_file_name="",
            mlflow_logging=False,
        )
    if automl.model is None or not objective.rows:
        raise FailedPrecondition(f"FLAML fitted no model in {budget} seconds; give a larger budget")
    return automl, objective


def _save_flaml(
    folder: Path, automl: Any, *, task: Task, transform: Transform, search: Mapping[str, Any]
) -> None:
    import joblib  # type: ignore[import-untyped, unused-ignore]

    folder.mkdir(parents=True)
    # FLAML's estimator wrapper and its DataTransformer, not the bare LightGBM/sklearn
    # model: together they hold the input preparation the model was fitted behind.
    saved = {
        "transformer": automl.feature_transformer,
        "estimator": automl.model,
        "classes": [int(c) for c in automl.classes_] if task.classification else [],
    }
    joblib.dump(saved, folder / FLAML_FILE)
    extra = {
        "kind": AUTOML,
        "estimator": str(automl.best_estimator),
        "features": [f.name for f in transform.features],
        "categorical": {f.name: f.width for f in transform.features if f.group != NUMERIC},
        "file": FLAML_FILE,
        "search": dict(search),
    }
    write_manifest(folder, framework=FLAML, transform=transform, task=task, extra=extra)


def _score(folder: Path, task: Task, splits: Mapping[str, Split | None]) -> dict[str, float]:
    """Validation and test metrics of a bundle, through the predictor a server would load;
    written into its manifest."""
    predictor = load_bundle(folder).predictor
    metrics: dict[str, float] = {}
    for name in ("validation", "test"):
        rows = splits[name]
        if rows is not None:
            values = _split_metrics(task, rows[1], predictor.predict(rows[0]))
            metrics |= {f"{name}_{key}": value for key, value in values.items()}
    _update_manifest(folder, {"metrics": metrics})
    return metrics


def _update_manifest(folder: Path, values: Mapping[str, Any]) -> None:
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(values)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _constant(task: Task, targets: Array) -> npt.NDArray[np.float64]:
    """The train split's class frequencies (their argmax is the majority class) or mean."""
    if task.classification:
        counts = np.bincount(targets, minlength=len(task.classes)).astype(np.float64)
        return np.asarray(counts / counts.sum(), dtype=np.float64)
    return np.array([float(np.mean(targets))])


def _check_estimators(task: Task, estimators: Sequence[str] | None) -> tuple[str, ...]:
    if estimators is None:
        return DEFAULT_ESTIMATORS[task.classification]
    allowed = ESTIMATORS[task.classification]
    if isinstance(estimators, str) or not estimators:
        raise InvalidArgument(f"estimators must be a non-empty list of {', '.join(allowed)}")
    for name in estimators:
        if name not in allowed:
            raise InvalidArgument(
                f"unknown estimator {name!r} for {task.kind}; one of {', '.join(allowed)}"
            )
    return tuple(dict.fromkeys(estimators))


def _check_classes(task: Task, metric: str, train: Array, validation: Array) -> None:
    if not task.classification:
        return
    seen = set(np.unique(train).tolist())
    if len(seen) < 2:
        raise InvalidArgument("the train split holds fewer than two classes")
    unseen = sorted(set(np.unique(validation).tolist()) - seen)
    if unseen:
        # FLAML encodes validation labels with the train split's classes and fails on others.
        raise InvalidArgument(
            f"the validation split holds class {task.classes[unseen[0]]!r}, which the train "
            "split lacks; prepare the dataset again (a stratified split, more rows)"
        )
    if metric in ("roc_auc", "pr_auc") and len(np.unique(validation)) < 2:
        raise InvalidArgument(f"{metric} needs two classes in the validation split")


def _frame(
    columns: Mapping[str, Array], features: tuple[str, ...], widths: Mapping[str, int]
) -> pd.DataFrame:
    """FLAML's input: numbers as floats, category ids as pandas categories (the boosters
    split on them natively; FLAML gives the other estimators their codes)."""
    x = feature_matrix(columns, features, widths)
    frame = pd.DataFrame(x.astype(np.float64), columns=list(features))
    for name, width in widths.items():
        frame[name] = pd.Categorical(x[:, features.index(name)].astype(np.int64), range(width))
    return frame


def _split_metrics(task: Task, targets: Array, predictions: Array) -> dict[str, float]:
    """`loss` with `accuracy` or `rmse`, as every classic model reports them, and
    `ratchet.evaluation`'s metrics; one the rows leave undefined (AUC of one class) is
    left out."""
    values = score(task, targets, predictions) | _metrics(task, targets, predictions)
    return {name: value for name, value in values.items() if math.isfinite(value)}


def _metrics(task: Task, targets: Array, predictions: Array) -> dict[str, float]:
    if task.classification:
        return classification_metrics(task, targets.astype(np.int64), predictions)
    return regression_metrics(targets, predictions)


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars (FLAML's configs hold some) as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
