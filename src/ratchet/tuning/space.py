"""Study configuration: the search space, the metrics and their goals, the algorithm.

Owns `StudyConfig` in the shape of Vertex AI Vizier's (parameters: double on a
linear or log scale, integer, discrete, categorical, with conditional children
under a parent's values; metrics with goals, several allowed; an algorithm),
its validation when it is built (low > high, a log scale with a non-positive
bound, an empty categorical, a duplicate name, an unknown algorithm: each a
one-line `InvalidArgument`), its YAML/dict form, and how a trial's values are
suggested through an Optuna trial. Running studies lives in `study`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from ratchet.errors import InvalidArgument

ALGORITHMS = ("tpe", "random", "grid", "gp", "cmaes")
GOALS = ("minimize", "maximize")
KINDS = ("double", "integer", "discrete", "categorical")
Value = bool | int | float | str


@dataclass(frozen=True)
class Parameter:
    """One dimension of the space; `children` apply only when this one takes a given value."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    scale: str = "linear"  # or "log" (double and integer)
    values: tuple[Value, ...] = ()  # discrete and categorical
    children: Mapping[Value, tuple[Parameter, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if not self.name:
            raise InvalidArgument("a parameter needs a name")
        if self.kind not in KINDS:
            raise InvalidArgument(f"{where}: type must be one of {KINDS}, got {self.kind!r}")
        if self.kind in ("double", "integer"):
            if self.low is None or self.high is None:
                raise InvalidArgument(f"{where}: give min and max")
            if not (math.isfinite(self.low) and math.isfinite(self.high)):
                raise InvalidArgument(f"{where}: min and max must be finite")
            if self.low > self.high:
                raise InvalidArgument(f"{where}: min {self.low} is above max {self.high}")
            if self.scale not in ("linear", "log"):
                raise InvalidArgument(f"{where}: scale must be linear or log, got {self.scale!r}")
            if self.scale == "log" and self.low <= 0:
                raise InvalidArgument(f"{where}: a log scale needs min > 0, got {self.low}")
            if self.kind == "integer" and not (
                float(self.low).is_integer() and float(self.high).is_integer()
            ):
                raise InvalidArgument(f"{where}: integer bounds must be whole numbers")
        else:
            if not self.values:
                raise InvalidArgument(f"{where}: give at least one value")
            if len(set(self.values)) != len(self.values):
                raise InvalidArgument(f"{where}: values repeat")
            if self.kind == "discrete" and not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in self.values
            ):
                raise InvalidArgument(f"{where}: discrete values must be numbers")
        for value in self.children:
            if self.kind in ("double", "integer") or value not in self.values:
                raise InvalidArgument(f"{where}: children hang on one of its values, not {value!r}")

    def suggest(self, trial: optuna.Trial) -> Value:
        if self.kind == "double":
            assert self.low is not None and self.high is not None
            return trial.suggest_float(self.name, self.low, self.high, log=self.scale == "log")
        if self.kind == "integer":
            assert self.low is not None and self.high is not None
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.scale == "log"
            )
        value = trial.suggest_categorical(self.name, list(self.values))
        assert value is not None  # None is never one of the values (they are checked)
        return value

    def walk(self) -> Iterator[Parameter]:
        yield self
        for children in self.children.values():
            for child in children:
                yield from child.walk()


@dataclass(frozen=True)
class Metric:
    name: str
    goal: str = "minimize"

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise InvalidArgument(f"metric {self.name!r}: goal must be minimize or maximize")


@dataclass(frozen=True)
class StudyConfig:
    parameters: tuple[Parameter, ...]
    metrics: tuple[Metric, ...] = (Metric("validation_loss"),)
    algorithm: str = "tpe"
    grid_points: int = 5  # values per double parameter for the grid algorithm

    def __post_init__(self) -> None:
        if not self.parameters:
            raise InvalidArgument("a study needs at least one parameter")
        if not self.metrics:
            raise InvalidArgument("a study needs at least one metric")
        names = [p.name for top in self.parameters for p in top.walk()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidArgument(f"parameter {duplicates[0]!r} is defined twice")
        metric_names = [m.name for m in self.metrics]
        if len(set(metric_names)) != len(metric_names):
            raise InvalidArgument("a metric is listed twice")
        if self.algorithm not in ALGORITHMS:
            raise InvalidArgument(
                f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}"
            )
        if self.algorithm == "grid" and any(
            p.children for top in self.parameters for p in top.walk()
        ):
            raise InvalidArgument("the grid algorithm cannot search conditional parameters")

    @property
    def directions(self) -> list[str]:
        return [m.goal for m in self.metrics]

    def suggest(self, trial: optuna.Trial) -> dict[str, Value]:
        """Values for every parameter that applies (children only under their parent's value)."""
        values: dict[str, Value] = {}
        pending = list(self.parameters)
        while pending:
            parameter = pending.pop(0)
            value = parameter.suggest(trial)
            values[parameter.name] = value
            pending.extend(parameter.children.get(value, ()))
        return values

    def grid(self) -> dict[str, list[Value]]:
        """The grid algorithm's search space: every value, doubles at `grid_points` points."""
        space: dict[str, list[Value]] = {}
        for p in self.parameters:
            if p.kind in ("discrete", "categorical"):
                space[p.name] = list(p.values)
            elif p.kind == "integer":
                assert p.low is not None and p.high is not None
                space[p.name] = list(range(int(p.low), int(p.high) + 1))
            else:
                assert p.low is not None and p.high is not None
                space[p.name] = _points(p.low, p.high, self.grid_points, p.scale == "log")
        return space

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": {p.name: _parameter_dict(p) for p in self.parameters},
            "metrics": [{"name": m.name, "goal": m.goal} for m in self.metrics],
            "algorithm": self.algorithm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyConfig:
        """`parameters: {name: {type, min, max, scale, values, children}}`, metrics, algorithm."""
        if not isinstance(data, Mapping) or not isinstance(data.get("parameters"), Mapping):
            raise InvalidArgument("a study config needs a 'parameters' mapping")
        metrics = data.get("metrics", [{"name": "validation_loss", "goal": "minimize"}])
        if not isinstance(metrics, Sequence) or isinstance(metrics, str):
            raise InvalidArgument("'metrics' must be a list of {name, goal}")
        try:
            return cls(
                parameters=_parameters(data["parameters"]),
                metrics=tuple(
                    Metric(str(m["name"]), str(m.get("goal", "minimize"))) for m in metrics
                ),
                algorithm=str(data.get("algorithm", "tpe")),
                grid_points=int(data.get("grid_points", 5)),
            )
        except (KeyError, TypeError) as e:
            raise InvalidArgument(f"malformed study config: {e}") from e


def _parameters(items: Mapping[str, Any]) -> tuple[Parameter, ...]:
    return tuple(_parameter(name, spec) for name, spec in items.items())


def _parameter(name: str, spec: Mapping[str, Any]) -> Parameter:
    if not isinstance(spec, Mapping):
        raise InvalidArgument(f"parameter {name!r} must be a mapping with a 'type'")
    kind = spec.get("type")
    known = {"type", "min", "max", "scale", "values", "children"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise InvalidArgument(f"parameter {name!r}: unknown key {unknown[0]!r}")
    children = {value: _parameters(group) for value, group in (spec.get("children") or {}).items()}
    return Parameter(
        name,
        str(kind),
        low=spec.get("min"),
        high=spec.get("max"),
        scale=str(spec.get("scale", "linear")),
        values=tuple(spec.get("values") or ()),
        children=children,
    )


def _parameter_dict(p: Parameter) -> dict[str, Any]:
    out: dict[str, Any] = {"type": p.kind}
    if p.kind in ("double", "integer"):
        out.update(min=p.low, max=p.high, scale=p.scale)
    else:
        out["values"] = list(p.values)
    if p.children:
        out["children"] = {
            value: {c.name: _parameter_dict(c) for c in group}
            for value, group in p.children.items()
        }
    return out


def _points(low: float, high: float, count: int, log: bool) -> list[Value]:
    if count < 2 or low == high:
        return [low]
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (count - 1)) for i in range(count)]
    return [low + (high - low) * i / (count - 1) for i in range(count)]
