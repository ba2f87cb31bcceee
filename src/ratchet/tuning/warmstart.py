"""Warm starts: seed a new study from an earlier one's best trials, in a narrower space.

Owns `warm_start`: when the initial weights change (a new domain-specific
checkpoint), the hyperparameters need fine-tuning, not a search from scratch.
The new study's space is the old one narrowed around the old best (each number
range to `narrow` times its width, centred on the best value, in log space for
log-scaled ones, clipped to the old bounds), and the old best `top_k` trials
are queued first so the new study starts from known good points.
"""

from __future__ import annotations

import dataclasses
import math

from ratchet.errors import InvalidArgument
from ratchet.tuning.space import Parameter, StudyConfig, Value
from ratchet.tuning.study import COMPLETE, Study


def narrowed(config: StudyConfig, best: dict[str, Value], factor: float) -> StudyConfig:
    """The space with every number range shrunk to `factor` of its width around `best`."""
    if not 0 < factor <= 1:
        raise InvalidArgument(f"narrow must be in (0, 1], got {factor}")
    return dataclasses.replace(
        config, parameters=tuple(_narrow(p, best, factor) for p in config.parameters)
    )


def _narrow(parameter: Parameter, best: dict[str, Value], factor: float) -> Parameter:
    children = {
        value: tuple(_narrow(c, best, factor) for c in group)
        for value, group in parameter.children.items()
    }
    value = best.get(parameter.name)
    if parameter.kind not in ("double", "integer") or not isinstance(value, int | float):
        return dataclasses.replace(parameter, children=children)
    assert parameter.low is not None and parameter.high is not None
    log = parameter.scale == "log"
    scale = math.log if log else float
    unscale = math.exp if log else float
    low, high, centre = scale(parameter.low), scale(parameter.high), scale(float(value))
    half = (high - low) * factor / 2
    new_low, new_high = max(low, centre - half), min(high, centre + half)
    lo, hi = unscale(new_low), unscale(new_high)
    if parameter.kind == "integer":
        lo, hi = math.floor(lo), math.ceil(hi)
    return dataclasses.replace(parameter, low=lo, high=hi, children=children)


def warm_start(
    previous: Study, name: str, *, top_k: int = 3, narrow: float = 0.5, seed: int | None = None
) -> Study:
    """A new study named `name` beside `previous`, narrowed around its best and seeded."""
    if top_k < 0:
        raise InvalidArgument(f"top_k must be >= 0, got {top_k}")
    [best] = previous.best_trials()[:1]
    config = narrowed(previous.config, best.parameters, narrow)
    study = Study.create(
        name, config, url=previous.url, early_stopping=previous.early_stopping, seed=seed
    )
    goal = previous.config.metrics[0]
    complete = [t for t in previous.trials() if t.state == COMPLETE]
    ranked = sorted(complete, key=lambda t: t.metrics[goal.name], reverse=goal.goal == "maximize")
    for trial in ranked[:top_k]:
        # The narrowed space may exclude an old point: queue it clipped into the new ranges.
        study.optuna.enqueue_trial(_clip(config, trial.parameters), skip_if_exists=True)
    study.optuna.set_user_attr("warm_started_from", previous.name)
    return study


def _clip(config: StudyConfig, values: dict[str, Value]) -> dict[str, Value]:
    clipped = dict(values)
    for top in config.parameters:
        for p in top.walk():
            value = clipped.get(p.name)
            if p.kind in ("double", "integer") and isinstance(value, int | float):
                assert p.low is not None and p.high is not None
                clipped[p.name] = min(max(value, p.low), p.high)
    return clipped
