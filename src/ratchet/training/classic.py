"""Classic trainers: scikit-learn, LightGBM and XGBoost on a prepared dataset, under the contract.

Owns the hyperparameter specs of the classic kinds (`SPECS`), their training on a
dataset folder's shards (`train_classic`: fit on train, report the validation loss
after every boosting round, score validation and test, save), the model folder
they write (the framework's own file plus a serving bundle's `model.json` and
`transform.json`, through `bundle.write_manifest`) and loading it back for
prediction from transformed columns (`load_classic`). `run_classic(**values)` is
the contract form for `jobs`; `python -m ratchet.training.classic --kind lightgbm
--learning_rate 0.1` the script form, for subprocess jobs.

Features are the transform's columns in its order, as one float32 matrix: numbers
as they are, categories as their ids. LightGBM and XGBoost take the ids as native
categorical features: the ids are dense (0..width-1), which both want, and a
categorical split can group any set of values where one-hot columns would need a
split per value. A random forest takes the ids as numbers: ids are ranked by
frequency, so a split on them separates frequent values from rare ones. Only the
linear floor models one-hot encode (inside the saved pipeline), since a single
weight per id would be meaningless.

It does not prepare data (`ratchet.data`), launch or record jobs (`jobs`), tune,
or apply the transform to raw records (`bundle`); the PyTorch models are `tabular`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ratchet.data.split import SPLITS
from ratchet.data.transform import NUMERIC, Transform
from ratchet.errors import InvalidArgument, NotFound, RatchetError
from ratchet.training import contract
from ratchet.training.contract import ObjectiveFailed, report
from ratchet.training.hyperparameters import Param, check_hyperparameters
from ratchet.training.prepared import describe, labelled_rows
from ratchet.training.task import BINARY, MULTICLASS, REGRESSION, Task

Matrix = npt.NDArray[np.float32]
Array = npt.NDArray[Any]
Split = tuple[Matrix, Array]  # features and encoded labels

FILES = {"sklearn": "model.joblib", "lightgbm": "model.txt", "xgboost": "model.ubj"}


def _boosting(learning_rate: float, reg_lambda: float) -> list[Param]:
    """What LightGBM and XGBoost share, with each library's own defaults."""
    return [
        Param("n_estimators", "int", 100, 1, 10_000),
        Param("learning_rate", "float", learning_rate, 1e-4, 1.0),
        Param("subsample", "float", 1.0, 0.1, 1.0),
        Param("colsample_bytree", "float", 1.0, 0.1, 1.0),
        Param("reg_alpha", "float", 0.0, 0.0, 1e4),
        Param("reg_lambda", "float", reg_lambda, 0.0, 1e4),
        # Rounds without improvement of the validation loss before stopping; 0 trains all.
        Param("early_stopping_rounds", "int", 0, 0, 10_000),
    ]


SPECS: dict[str, list[Param]] = {
    "sklearn-logistic": [
        Param("C", "float", 1.0, 1e-6, 1e6),
        Param("max_iter", "int", 1000, 10, 100_000),
        Param("class_weight", "categorical", "none", choices=("none", "balanced")),
    ],
    "sklearn-linear": [Param("alpha", "float", 1.0, 0.0, 1e6)],
    "sklearn-forest": [
        Param("n_estimators", "int", 100, 1, 5_000),
        Param("max_depth", "int", 0, 0, 200),  # 0: grow until leaves are pure
        Param("min_samples_leaf", "int", 1, 1, 100_000),
        Param("max_features", "categorical", "sqrt", choices=("sqrt", "log2", "all")),
    ],
    "lightgbm": [
        *_boosting(0.1, 0.0),
        Param("num_leaves", "int", 31, 2, 131_072),
        Param("max_depth", "int", -1, -1, 64),  # -1: no limit, leaves bound the tree
        Param("min_child_samples", "int", 20, 1, 1_000_000),
    ],
    "xgboost": [
        *_boosting(0.3, 1.0),
        Param("max_depth", "int", 6, 1, 32),
        Param("min_child_weight", "float", 1.0, 0.0, 1e4),
        Param("gamma", "float", 0.0, 0.0, 1e4),
    ],
}
FRAMEWORKS = {kind: kind.split("-")[0] for kind in SPECS}  # "sklearn-forest" -> "sklearn"


@dataclasses.dataclass(frozen=True)
class ClassicModel:
    """A fitted classic model and what it needs to read transformed columns."""

    framework: str
    kind: str
    task: Task
    features: tuple[str, ...]
    widths: Mapping[str, int]  # categorical feature -> number of ids
    estimator: Any  # a scikit-learn estimator, a lightgbm.Booster or an xgboost.Booster

    def predict(self, features: Mapping[str, Array]) -> npt.NDArray[np.float64]:
        """Class probabilities [n, classes] (binary: [n, 2]) or regression values [n]."""
        return self.predict_matrix(feature_matrix(features, self.features, self.widths))

    def predict_matrix(self, x: Matrix) -> npt.NDArray[np.float64]:
        if not len(x):  # scikit-learn refuses an empty batch; a server may well send one
            return np.zeros((0, len(self.task.classes)) if self.task.classification else 0)
        if self.framework == "sklearn":
            if not self.task.classification:
                return np.asarray(self.estimator.predict(x), dtype=np.float64)
            # A class missing from the training split has no column of its own: probability 0.
            seen = np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
            out = np.zeros((len(x), len(self.task.classes)))
            out[:, np.asarray(self.estimator.classes_, dtype=np.int64)] = seen
            return out
        if self.framework == "lightgbm":
            raw = self.estimator.predict(x)
        else:
            raw = self.estimator.predict(self._dmatrix(x))
        values = np.asarray(raw, dtype=np.float64)
        return np.column_stack([1.0 - values, values]) if self.task.kind == BINARY else values

    def _dmatrix(self, x: Matrix, label: Array | None = None) -> Any:
        import xgboost as xgb

        types = ["c" if name in self.widths else "q" for name in self.features]
        return xgb.DMatrix(x, label=label, feature_types=types, enable_categorical=True)

    def save(self, model_dir: Path, *, transform: Transform, metrics: Mapping[str, float]) -> None:
        """The model's file, then a serving bundle's `model.json` and `transform.json`."""
        from ratchet.training.bundle import write_manifest  # it imports torch: only to save

        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / FILES[self.framework]
        if self.framework == "sklearn":
            import joblib  # type: ignore[import-untyped, unused-ignore]

            joblib.dump(self.estimator, path)
        else:
            # LightGBM writes only the best iteration's trees when early stopping found one.
            self.estimator.save_model(str(path))
        extra: dict[str, Any] = {"kind": self.kind, "features": list(self.features)}
        extra |= {"file": path.name, "categorical": dict(self.widths), "metrics": dict(metrics)}
        write_manifest(
            model_dir, framework=self.framework, transform=transform, task=self.task, extra=extra
        )


def train_classic(
    kind: str,
    hyperparameters: Mapping[str, Any],
    *,
    dataset: Path,
    model_dir: Path,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, float]:
    """Fit `kind` on the train split, bundle it in `model_dir`; validation and test metrics.

    Metrics: `validation_loss` (log-loss, or mean squared error for regression) with
    `validation_accuracy` or `validation_rmse`, and the same for `test_` when the test
    split has rows. Boosters report `validation_loss` after every round (step = trees
    so far); the final report, with every metric, comes once the bundle is saved.
    `threads` (default: the library's, all cores) caps the fit's threads: processes
    sharing a machine (parallel trials, test workers) must, as the libraries' OpenMP
    threads spin and slow each other down by an order of magnitude.
    """
    if kind not in SPECS:
        raise InvalidArgument(f"unknown classic trainer {kind!r}; one of {', '.join(SPECS)}")
    params = check_hyperparameters(SPECS[kind], hyperparameters)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidArgument(f"seed must be an int, got {seed!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidArgument(f"threads must be a positive int or None, got {threads!r}")
    dataset, model_dir = Path(dataset), Path(model_dir)
    task, transform = describe(dataset)
    if kind == "sklearn-logistic" and not task.classification:
        raise InvalidArgument("sklearn-logistic is for classification; use sklearn-linear")
    if kind == "sklearn-linear" and task.classification:
        raise InvalidArgument("sklearn-linear is for regression; use sklearn-logistic")
    features = tuple(f.name for f in transform.features)
    widths = {f.name: f.width for f in transform.features if f.group != NUMERIC}
    # The model before fitting: what the readers and the fitters need to know.
    model = ClassicModel(FRAMEWORKS[kind], kind, task, features, widths, None)
    train, validation, test = (_read_split(dataset, name, model) for name in SPLITS)
    if train is None or validation is None:
        raise InvalidArgument(f"{dataset} needs labelled train and validation rows")
    fit = {"sklearn": _fit_sklearn, "lightgbm": _fit_lightgbm, "xgboost": _fit_xgboost}
    estimator, step = fit[model.framework](
        model, params, train=train, validation=validation, seed=seed, threads=threads
    )
    fitted = dataclasses.replace(model, estimator=estimator)
    metrics: dict[str, float] = {}
    for name, rows in (("validation", validation), ("test", test)):
        if rows is not None:
            scores = score(task, rows[1], fitted.predict_matrix(rows[0]))
            metrics.update({f"{name}_{k}": v for k, v in scores.items()})
    fitted.save(model_dir, transform=transform, metrics=metrics)
    report(step=step, **metrics)
    return metrics


def run_classic(**hyperparameters: Any) -> dict[str, float]:
    """The contract form, for `jobs`: `kind`, `seed`, `threads` and the kind's
    hyperparameters as keywords; the dataset and model dir from `context()`."""
    values = dict(hyperparameters)
    kind, seed = values.pop("kind", None), values.pop("seed", 0)
    threads, training = values.pop("threads", None), contract.context()
    if kind is None or training.dataset is None:
        raise InvalidArgument("give kind (--kind) and a dataset folder in RATCHET_DATASET")
    dataset, model_dir = Path(training.dataset), training.model_dir
    return train_classic(
        str(kind), values, dataset=dataset, model_dir=model_dir, seed=seed, threads=threads
    )


def load_classic(model_dir: Path) -> ClassicModel:
    """The classic model saved in `model_dir` (a joblib file is unpickled: trusted dirs only)."""
    model_dir = Path(model_dir)
    path = model_dir / "model.json"
    if not path.is_file():
        raise NotFound(f"no model.json in {model_dir}; train a classic model there first")
    try:
        meta = json.loads(path.read_text())
        framework, kind, file = meta["framework"], meta["kind"], meta["file"]
        task = Task.from_dict(meta["task"])
        features = tuple(str(name) for name in meta["features"])
        widths = {str(name): int(width) for name, width in meta["categorical"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InvalidArgument(f"{path} does not describe a classic model: {e!r}") from e
    if FRAMEWORKS.get(kind) != framework or file != FILES[framework]:
        raise InvalidArgument(f"{path} describes a {framework!r} model, not a classic one")
    if not (model_dir / file).is_file():
        raise NotFound(f"{model_dir} has model.json but not its model file {file}")
    if framework == "sklearn":
        import joblib  # type: ignore[import-untyped, unused-ignore]

        estimator = joblib.load(model_dir / file)
    elif framework == "lightgbm":
        import lightgbm as lgb

        estimator = lgb.Booster(model_file=str(model_dir / file))
    else:
        import xgboost as xgb

        estimator = xgb.Booster(model_file=str(model_dir / file))
    return ClassicModel(framework, kind, task, features, widths, estimator)


def score(task: Task, targets: Array, predictions: Array) -> dict[str, float]:
    """`loss` (log-loss or mean squared error) and `accuracy` or `rmse`."""
    if task.classification:
        # By hand rather than sklearn's log_loss, which warns when float32 rows
        # (XGBoost's) do not sum to exactly one.
        chosen = predictions[np.arange(len(targets)), targets]
        loss = -np.mean(np.log(np.clip(chosen, 1e-15, 1.0)))
        accuracy = np.mean(np.argmax(predictions, axis=1) == targets)
        return {"loss": float(loss), "accuracy": float(accuracy)}
    mse = float(np.mean((predictions - targets.astype(np.float64)) ** 2))
    return {"loss": mse, "rmse": math.sqrt(mse)}


def feature_matrix(
    columns: Mapping[str, Array], features: Sequence[str], widths: Mapping[str, int]
) -> Matrix:
    """One float32 matrix of `features` (transformed columns, ids checked against widths)."""
    missing = [name for name in features if name not in columns]
    if missing:
        raise InvalidArgument(f"feature column {missing[0]!r} is missing")
    rows = len(columns[features[0]])
    x = np.empty((rows, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        values = np.asarray(columns[name])
        if values.ndim != 1 or len(values) != rows or values.dtype.kind not in "biuf":
            raise InvalidArgument(
                f"feature {name!r} must be a 1-D numeric column of {rows} values "
                f"(transformed, not raw), got {values.dtype} {values.shape}"
            )
        width = widths.get(name)
        if width is not None and rows and (values.min() < 0 or values.max() >= width):
            raise InvalidArgument(f"feature {name!r} holds ids outside 0..{width - 1}")
        x[:, j] = values
    return x


def _read_split(dataset: Path, split: str, model: ClassicModel) -> Split | None:
    """Features and encoded labels of one split (None if it has no labelled rows)."""
    found = labelled_rows(dataset, split, model.task, model.features)
    if found is None:
        return None
    columns, labels = found
    return feature_matrix(columns, model.features, model.widths), labels


class _Rounds:
    """Reports each boosting round's validation loss; a non-finite one fails the objective."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise ObjectiveFailed(f"validation loss is {loss} after round {step}", step=step)
        self.last = step
        report(step=step, validation_loss=loss)


def _fit_sklearn(
    model: ClassicModel,
    params: dict[str, Any],
    *,
    train: Split,
    validation: Split,
    seed: int,
    threads: int | None,
) -> tuple[Any, int]:
    from sklearn import (  # type: ignore[import-untyped, unused-ignore]
        compose,
        ensemble,
        linear_model,
        pipeline,
        preprocessing,
    )

    classification = model.task.classification
    estimator: Any
    if model.kind == "sklearn-forest":
        forest = (
            ensemble.RandomForestClassifier if classification else ensemble.RandomForestRegressor
        )
        max_features = params["max_features"]
        estimator = forest(
            n_estimators=params["n_estimators"],
            max_depth=params["max_depth"] or None,
            min_samples_leaf=params["min_samples_leaf"],
            max_features=None if max_features == "all" else max_features,
            random_state=seed,
            n_jobs=threads or -1,  # trees are seeded one by one: the same forest on any cores
        )
    else:
        if classification:
            weight = None if params["class_weight"] == "none" else params["class_weight"]
            linear = linear_model.LogisticRegression(
                C=params["C"], max_iter=params["max_iter"], class_weight=weight, random_state=seed
            )
        else:
            linear = linear_model.Ridge(alpha=params["alpha"])
        columns = [j for j, name in enumerate(model.features) if name in model.widths]
        if not columns:
            estimator = linear
        else:
            ids = [np.arange(model.widths[model.features[j]]) for j in columns]
            encoder = preprocessing.OneHotEncoder(categories=ids, handle_unknown="ignore")
            one_hot = compose.ColumnTransformer(
                [("one_hot", encoder, columns)], remainder="passthrough"
            )
            estimator = pipeline.make_pipeline(one_hot, linear)
    estimator.fit(*train)
    if model.kind == "sklearn-forest":
        # Threads sum the trees' predictions in the order they finish, which moves the
        # last bits; one thread makes predictions repeatable (fitting stays parallel).
        estimator.n_jobs = 1
    return estimator, 0  # a one-shot fit reports once, at step 0


def _native(params: dict[str, Any]) -> dict[str, Any]:
    """The booster's own parameters: rounds and early stopping are `train` arguments."""
    return {k: v for k, v in params.items() if k not in ("n_estimators", "early_stopping_rounds")}


_OBJECTIVES = {  # task kind -> (LightGBM objective, metric), (XGBoost objective, metric)
    BINARY: (("binary", "binary_logloss"), ("binary:logistic", "logloss")),
    MULTICLASS: (("multiclass", "multi_logloss"), ("multi:softprob", "mlogloss")),
    REGRESSION: (("regression", "l2"), ("reg:squarederror", "rmse")),
}


def _fit_lightgbm(
    model: ClassicModel,
    params: dict[str, Any],
    *,
    train: Split,
    validation: Split,
    seed: int,
    threads: int | None,
) -> tuple[Any, int]:
    import lightgbm as lgb

    # The native API rather than LGBMClassifier: the number of classes comes from the
    # Task, so class ids agree with it even when the train split lacks a class.
    (objective, metric), _ = _OBJECTIVES[model.task.kind]
    # The spec's names are LightGBM's aliases (those of its scikit-learn interface).
    native: dict[str, Any] = {
        **_native(params),
        "objective": objective,
        "metric": metric,
        "bagging_freq": 1 if params["subsample"] < 1 else 0,  # else subsample is silently off
        "seed": seed,
        "deterministic": True,
        "num_threads": threads or 0,  # 0: OpenMP's default; results depend on the number
        "force_col_wise": True,  # fixed, so results do not hang on a timing-based choice
        "verbosity": -1,
    }
    if model.task.kind == MULTICLASS:
        native["num_class"] = len(model.task.classes)
    categorical = [j for j, name in enumerate(model.features) if name in model.widths]
    data = lgb.Dataset(*train, categorical_feature=categorical, params={"verbosity": -1})
    checked = lgb.Dataset(*validation, reference=data)
    rounds = _Rounds()

    def on_round(env: Any) -> None:
        rounds(env.iteration + 1, float(env.evaluation_result_list[0][2]))

    callbacks: list[Any] = [on_round]
    if params["early_stopping_rounds"]:
        callbacks.append(lgb.early_stopping(params["early_stopping_rounds"], verbose=False))
    booster = lgb.train(
        native,
        data,
        num_boost_round=params["n_estimators"],
        valid_sets=[checked],
        valid_names=["validation"],
        callbacks=callbacks,
    )
    return booster, rounds.last


def _fit_xgboost(
    model: ClassicModel,
    params: dict[str, Any],
    *,
    train: Split,
    validation: Split,
    seed: int,
    threads: int | None,
) -> tuple[Any, int]:
    import xgboost as xgb

    # Native API for the same reason as LightGBM: XGBClassifier refuses a train split
    # that lacks one of the Task's classes.
    _, (objective, metric) = _OBJECTIVES[model.task.kind]
    native: dict[str, Any] = {
        "objective": objective,
        "eval_metric": metric,
        "tree_method": "hist",
        "seed": seed,
        **_native(params),
        **({"nthread": threads} if threads else {}),
    }
    if model.task.kind == MULTICLASS:
        native["num_class"] = len(model.task.classes)
    rounds = _Rounds()
    square = model.task.kind == REGRESSION  # XGBoost has RMSE; the loss is the MSE

    class OnRound(xgb.callback.TrainingCallback):
        def after_iteration(self, booster: Any, epoch: int, evals_log: Any) -> bool:
            value = float(evals_log["validation"][metric][-1])
            rounds(epoch + 1, value * value if square else value)
            return False

    booster = xgb.train(
        native,
        model._dmatrix(*train),
        num_boost_round=params["n_estimators"],
        evals=[(model._dmatrix(*validation), "validation")],
        early_stopping_rounds=params["early_stopping_rounds"] or None,
        verbose_eval=False,
        callbacks=[OnRound()],
    )
    if params["early_stopping_rounds"]:
        # XGBoost keeps the trees past the best round; keep (and save) only the best.
        booster = booster[: booster.best_iteration + 1]
    return booster, rounds.last


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ratchet.training.classic --kind KIND [--seed N] [--threads N] [--name value]`."""
    try:
        run_classic(**contract.parse_hyperparameters(argv))
    except contract.TrialStopped as e:
        # Its message names the step; the launcher needs only the outcome.
        contract.record_outcome(contract.STOPPED, str(e), step=0)
    except ObjectiveFailed as e:
        contract.record_outcome(contract.FAILED_OBJECTIVE, e.reason, step=e.step)
        print(f"objective failed: {e.reason}", file=sys.stderr)
        return 3
    except RatchetError as e:
        print(f"error: {e}", file=sys.stderr)  # bad input: one line, no traceback
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
