"""Studies: a search over hyperparameters that lives in the metadata store's database.

Owns `Study` in the shape of Vertex AI Vizier's: created or loaded by name on a
store URL (Optuna's journal over ratchet's own table, so every worker on every
machine that opens the same URL shares the study), the ask/tell form for
trials run elsewhere (`suggest`, `add_measurement`, `complete_trial`), the
trials as records, and the best trials by each metric's goal. Running trials
(`optimize`) is in `trials`, warm starts in `warmstart`, the search space in
`space`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from ratchet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ratchet.tuning.space import StudyConfig, Value
from ratchet.tuning.storage import open_storage

if TYPE_CHECKING:
    from ratchet.metadata import MetadataStore
    from ratchet.tuning.trials import TrialTarget

CONFIG_ATTR = "ratchet_config"
STOPPING_ATTR = "ratchet_early_stopping"
RULES = ("none", "median", "percentile", "successive_halving", "hyperband")
COMPLETE, STOPPED, FAILED, RUNNING, WAITING = "COMPLETE", "STOPPED", "FAILED", "RUNNING", "WAITING"
_STATES = {
    optuna.trial.TrialState.COMPLETE: COMPLETE,
    optuna.trial.TrialState.PRUNED: STOPPED,
    optuna.trial.TrialState.FAIL: FAILED,
    optuna.trial.TrialState.RUNNING: RUNNING,
    optuna.trial.TrialState.WAITING: WAITING,
}

optuna.logging.set_verbosity(optuna.logging.WARNING)  # ratchet reports trials itself


@dataclass(frozen=True)
class EarlyStopping:
    """Automated early stopping of poor trials from their intermediate reports."""

    rule: str = "median"
    startup_trials: int = 3  # trials that always finish, to have something to compare with
    warmup_steps: int = 0  # steps of each trial never judged
    percentile: float = 25.0  # the percentile rule keeps trials in the best this-many percent
    min_resource: int = 1  # successive halving and hyperband: steps before the first rung
    reduction_factor: int = 3

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise InvalidArgument(f"early stopping rule must be one of {', '.join(RULES)}")
        if not 0 < self.percentile < 100:
            raise InvalidArgument("percentile must be in (0, 100)")
        if self.startup_trials < 0 or self.warmup_steps < 0 or self.min_resource < 1:
            raise InvalidArgument("startup_trials, warmup_steps >= 0 and min_resource >= 1")
        if self.reduction_factor < 2:
            raise InvalidArgument("reduction_factor must be at least 2")

    def pruner(self) -> optuna.pruners.BasePruner:
        if self.rule == "median":
            return optuna.pruners.MedianPruner(self.startup_trials, self.warmup_steps)
        if self.rule == "percentile":
            return optuna.pruners.PercentilePruner(
                self.percentile, self.startup_trials, self.warmup_steps
            )
        if self.rule == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(self.min_resource, self.reduction_factor)
        if self.rule == "hyperband":
            return optuna.pruners.HyperbandPruner(
                self.min_resource, reduction_factor=self.reduction_factor
            )
        return optuna.pruners.NopPruner()

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str
    parameters: dict[str, Value]
    metrics: dict[str, float]  # final values, by metric name
    intermediate: dict[int, float] = field(default_factory=dict)  # the first metric by step
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped_at(self) -> int | None:
        """The last reported step of a trial stopped early."""
        return max(self.intermediate) if self.state == STOPPED and self.intermediate else None


@dataclass(frozen=True)
class Suggestion:
    number: int
    parameters: dict[str, Value]


def make_sampler(config: StudyConfig, seed: int | None) -> optuna.samplers.BaseSampler:
    if config.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.algorithm == "grid":
        return optuna.samplers.GridSampler(config.grid(), seed=seed)
    if config.algorithm == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if config.algorithm == "cmaes":
        if len(config.metrics) > 1:
            raise InvalidArgument("CMA-ES optimizes one metric; use tpe for several")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


class Study:
    """One named study on a store URL; make it with `Study.create` or `Study.load`."""

    def __init__(
        self,
        optuna_study: optuna.Study,
        config: StudyConfig,
        *,
        url: str,
        early_stopping: EarlyStopping,
    ) -> None:
        self.optuna, self.config, self.url = optuna_study, config, url
        self.early_stopping = early_stopping

    @property
    def name(self) -> str:
        return self.optuna.study_name

    @classmethod
    def create(
        cls,
        name: str,
        config: StudyConfig,
        *,
        url: str,
        early_stopping: EarlyStopping | None = None,
        seed: int | None = None,
        exist_ok: bool = False,
    ) -> Study:
        """A new study (or, with `exist_ok`, the existing one of that name and config)."""
        stopping = early_stopping or EarlyStopping()
        storage = open_storage(url)
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                directions=[optuna.study.StudyDirection[g.upper()] for g in config.directions],
                sampler=make_sampler(config, seed),
                pruner=_pruner(config, stopping),
            )
        except optuna.exceptions.DuplicatedStudyError:
            if not exist_ok:
                raise AlreadyExists(
                    f"study {name!r} already exists; load it or pick a new name"
                ) from None
            loaded = cls.load(name, url=url, seed=seed)
            if loaded.config.to_dict() != config.to_dict():
                raise FailedPrecondition(
                    f"study {name!r} exists with another search space; pick a new name"
                ) from None
            return loaded
        study.set_user_attr(CONFIG_ATTR, json.dumps(config.to_dict()))
        study.set_user_attr(STOPPING_ATTR, json.dumps(stopping.to_dict()))
        return cls(study, config, url=url, early_stopping=stopping)

    @classmethod
    def load(cls, name: str, *, url: str, seed: int | None = None) -> Study:
        storage = open_storage(url)
        try:
            summary = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise NotFound(f"no study {name!r} in {url}") from None
        attrs = summary.user_attrs
        if CONFIG_ATTR not in attrs:
            raise InvalidArgument(f"study {name!r} was not made by ratchet (no config)")
        config = StudyConfig.from_dict(json.loads(attrs[CONFIG_ATTR]))
        stopping = EarlyStopping(**json.loads(attrs.get(STOPPING_ATTR, "{}")))
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=make_sampler(config, seed),
            pruner=_pruner(config, stopping),
        )
        return cls(study, config, url=url, early_stopping=stopping)

    def optimize(
        self,
        target: TrialTarget,
        *,
        max_trials: int,
        parallel_trials: int = 1,
        failure_budget: int = 3,
        root: Path,
        store: MetadataStore | None = None,
        on_trial: Callable[[TrialRecord], None] | None = None,
    ) -> list[TrialRecord]:
        """Run trials of `target` until the study holds `max_trials` finished ones.

        With `store`, every trial is a tracking run (experiment = the study's name) and
        a `TrainingJob` execution linked to the dataset and the initial weights.
        """
        from ratchet.tuning.trials import run_trials

        return run_trials(
            self,
            target,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            failure_budget=failure_budget,
            root=root,
            store=store,
            on_trial=on_trial,
        )

    # -- ask / tell: trials run anywhere ------------------------------------------------

    def suggest(self, count: int = 1) -> list[Suggestion]:
        if count < 1:
            raise InvalidArgument(f"count must be at least 1, got {count}")
        suggestions = []
        for _ in range(count):
            trial = self.optuna.ask()
            suggestions.append(Suggestion(trial.number, self.config.suggest(trial)))
        return suggestions

    def add_measurement(self, number: int, step: int, metrics: Mapping[str, float]) -> bool:
        """Record an intermediate measurement; True means: stop this trial, it is not promising."""
        metric = self.config.metrics[0].name
        if metric not in metrics or len(self.config.metrics) > 1:
            return False
        value = float(metrics[metric])
        if not math.isfinite(value):
            return False
        trial = self._running(number)
        trial.report(value, step)
        return trial.should_prune()

    def complete_trial(
        self,
        number: int,
        metrics: Mapping[str, float] | None = None,
        *,
        stopped: bool = False,
        infeasible: str | None = None,
    ) -> TrialRecord:
        """Finish a trial: with its final metrics, as stopped early, or as infeasible (failed)."""
        trial = self._running(number)
        if infeasible is not None:
            trial.set_user_attr("reason", infeasible[:2000])
            self.optuna.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif stopped:
            self.optuna.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            values = self._values(metrics or {})
            trial.set_user_attr("metrics", dict(metrics or {}))
            self.optuna.tell(trial, values)
        return self.trial(number)

    def _values(self, metrics: Mapping[str, float]) -> list[float]:
        missing = [m.name for m in self.config.metrics if m.name not in metrics]
        if missing:
            raise InvalidArgument(
                f"the trial reported no {missing[0]!r}, which the study optimizes"
            )
        values = [float(metrics[m.name]) for m in self.config.metrics]
        if not all(math.isfinite(v) for v in values):
            raise InvalidArgument(f"the trial's metrics are not finite: {dict(metrics)}")
        return values

    def _running(self, number: int) -> optuna.Trial:
        found = [t for t in self.optuna.get_trials(deepcopy=False) if t.number == number]
        if not found:
            raise NotFound(f"study {self.name!r} has no trial {number}")
        if found[0].state != optuna.trial.TrialState.RUNNING:
            raise FailedPrecondition(f"trial {number} is {_STATES[found[0].state]}, not running")
        return optuna.Trial(self.optuna, found[0]._trial_id)

    # -- results ----------------------------------------------------------------------

    def trials(self) -> list[TrialRecord]:
        return [_record(t, self.config) for t in self.optuna.get_trials(deepcopy=False)]

    def trial(self, number: int) -> TrialRecord:
        storage = self.optuna._storage
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                self.optuna._study_id, number
            )
        except KeyError:
            raise NotFound(f"study {self.name!r} has no trial {number}") from None
        return _record(storage.get_trial(trial_id), self.config)

    def best_trials(self) -> list[TrialRecord]:
        """The best trial by the metric's goal (several: the Pareto front of several metrics)."""
        complete = [t for t in self.trials() if t.state == COMPLETE]
        if not complete:
            raise NotFound(f"study {self.name!r} has no completed trial yet")
        if len(self.config.metrics) == 1:
            metric = self.config.metrics[0]
            pick = min if metric.goal == "minimize" else max
            return [pick(complete, key=lambda t: t.metrics[metric.name])]
        numbers = {t.number for t in self.optuna.best_trials}
        return [t for t in complete if t.number in numbers]

    def importance(self) -> dict[str, float]:
        """Each parameter's share of the variation in the first metric (fANOVA)."""
        complete = [t for t in self.trials() if t.state == COMPLETE]
        if len(complete) < 2:
            return {}
        try:
            importances = dict(
                optuna.importance.get_param_importances(
                    self.optuna,
                    evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                    target=lambda t: t.values[0] if t.values else math.nan,
                )
            )
            return {name: float(share) for name, share in importances.items()}
        except (RuntimeError, ValueError):
            return {}  # too few distinct values to apportion anything


def _pruner(config: StudyConfig, stopping: EarlyStopping) -> optuna.pruners.BasePruner:
    # Optuna prunes single-objective studies only.
    if len(config.metrics) > 1:
        return optuna.pruners.NopPruner()
    return stopping.pruner()


def _record(trial: optuna.trial.FrozenTrial, config: StudyConfig) -> TrialRecord:
    metrics: dict[str, float] = dict(trial.user_attrs.get("metrics", {}))
    if trial.values is not None:
        metrics.update({m.name: v for m, v in zip(config.metrics, trial.values, strict=True)})
    return TrialRecord(
        trial.number,
        _STATES.get(trial.state, str(trial.state)),
        dict(trial.params),
        metrics,
        dict(trial.intermediate_values),
        {k: v for k, v in trial.user_attrs.items() if k != "metrics"},
    )
