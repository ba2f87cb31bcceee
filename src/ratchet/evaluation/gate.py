"""The gate: a candidate replaces the champion only when it is measurably better.

Owns `GateConfig` (the objective, its direction, the minimum improvement,
optional slice weights, the largest regression any slice may show), `gate`
(candidate and champion evaluations on the same rows in, `GateDecision` out:
promote, or reject with every reason) and `decide_and_promote`, which records
the decision (a `Gate` execution from the two model versions and their recorded
evaluations to a `GateDecision` artifact, in the model's context) and, on
promotion, moves the alias with the registry's single atomic write. Metrics are
`metrics`', evaluations `report`'s; the alias mechanics are `ratchet.registry`'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.evaluation.metrics import HIGHER_IS_BETTER, metric_names
from ratchet.evaluation.recording import find_evaluations
from ratchet.evaluation.report import Evaluation, check_comparable
from ratchet.metadata import (
    Artifact,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.rows import to_datetime
from ratchet.registry import CHAMPION, REGISTERED_MODEL, ModelVersion, Registry

GATE, GATE_DECISION = "Gate", "GateDecision"
TYPES = (
    RecordType(
        Kind.ARTIFACT,
        GATE_DECISION,
        {
            "model": PropertyType.STRING,
            "alias": PropertyType.STRING,
            "candidate_version": PropertyType.INT,
            "champion_version": PropertyType.INT,
            "promote": PropertyType.BOOL,
            "objective": PropertyType.STRING,
        },
    ),
    RecordType(Kind.EXECUTION, GATE, {"model": PropertyType.STRING, "promote": PropertyType.BOOL}),
)
MODES = ("min", "max")
NO_CHAMPION = "no champion"


@dataclass(frozen=True)
class GateConfig:
    """How a candidate must beat the champion.

    `objective`: a metric name (default: log_loss for classification, rmse for
    regression); `mode`: "min" or "max" (default: the metric's own direction).
    `min_improvement`: by how much the objective must improve, absolute or, with
    `relative`, a fraction of the champion's value. `slice_weights`: slice name
    ("overall" for all rows) -> weight; the objective is then the weighted mean
    over those slices. `max_slice_regression`: the most any slice of at least
    `min_slice_rows` rows may get worse on the objective (absolute, or relative
    with `relative`); None checks no slice.
    """

    objective: str | None = None
    mode: str | None = None
    min_improvement: float = 0.0
    relative: bool = False
    slice_weights: Mapping[str, float] | None = None
    max_slice_regression: float | None = None
    min_slice_rows: int = 1

    def __post_init__(self) -> None:
        if self.objective is not None and self.objective not in HIGHER_IS_BETTER:
            raise InvalidArgument(
                f"unknown objective {self.objective!r}; one of {', '.join(HIGHER_IS_BETTER)}"
            )
        if self.mode is not None and self.mode not in MODES:
            raise InvalidArgument(f"mode must be 'min' or 'max', got {self.mode!r}")
        if not _non_negative(self.min_improvement):
            raise InvalidArgument(f"min_improvement must be >= 0, got {self.min_improvement!r}")
        if self.max_slice_regression is not None and not _non_negative(self.max_slice_regression):
            raise InvalidArgument(
                f"max_slice_regression must be >= 0 or None, got {self.max_slice_regression!r}"
            )
        if self.slice_weights is not None:
            weights = dict(self.slice_weights)
            if not weights or not all(_non_negative(w) for w in weights.values()):
                raise InvalidArgument("slice_weights must map slice names to weights >= 0")
            if sum(weights.values()) <= 0:
                raise InvalidArgument("slice_weights must not all be zero")
            object.__setattr__(self, "slice_weights", weights)
        if not isinstance(self.min_slice_rows, int) or self.min_slice_rows < 1:
            raise InvalidArgument(
                f"min_slice_rows must be a positive int, got {self.min_slice_rows!r}"
            )

    def resolve(self, evaluation: Evaluation) -> tuple[str, str]:
        """The objective and mode for the evaluation's task."""
        objective = self.objective or ("log_loss" if evaluation.task.classification else "rmse")
        if objective not in metric_names(evaluation.task):
            raise InvalidArgument(
                f"objective {objective!r} is not a {evaluation.task.kind} metric; use one of "
                f"{', '.join(metric_names(evaluation.task))}"
            )
        return objective, self.mode or ("max" if HIGHER_IS_BETTER[objective] else "min")


def _non_negative(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict. `improvement` is in the better direction (negative: worse),
    relative to the champion's value when the config says so; None with no champion."""

    promote: bool
    reasons: tuple[str, ...]
    objective: str
    mode: str
    candidate_value: float
    champion_value: float | None = None
    improvement: float | None = None
    fingerprint: str = ""
    slice_changes: Mapping[str, float] = field(default_factory=dict)  # slice -> improvement


def gate(
    candidate: Evaluation, champion: Evaluation | None, config: GateConfig | None = None
) -> GateDecision:
    """Promote or reject `candidate` against `champion` (None: there is none yet)."""
    config = config or GateConfig()
    objective, mode = config.resolve(candidate)
    value = _objective(candidate, objective, config)
    if champion is None:
        return GateDecision(
            True, (NO_CHAMPION,), objective, mode, value, fingerprint=candidate.fingerprint
        )
    check_comparable(candidate, champion)  # refuses different rows: no apples to oranges
    reference = _objective(champion, objective, config)
    shown = f"{objective} {_fmt(value)} against the champion's {_fmt(reference)}"
    improvement = _improvement(value, reference, mode=mode, relative=config.relative)
    unit = " of the champion's value" if config.relative else ""
    reasons = []
    if not math.isfinite(value) or not math.isfinite(reference):
        reasons.append(f"{shown}: the objective is undefined on these rows")
    elif not _exceeds(improvement, 0.0):
        reasons.append(f"{shown}: not better")
    elif _exceeds(config.min_improvement, improvement):
        reasons.append(
            f"{shown}: improvement {_fmt(improvement)}{unit} is below the required "
            f"{_fmt(config.min_improvement)}{unit}"
        )
    changes = {}
    for name in candidate.names()[1:]:  # overall is the objective's business
        if name not in champion.names():
            continue
        ours, theirs = candidate.scores(name), champion.scores(name)
        x, y = ours.metrics.get(objective, math.nan), theirs.metrics.get(objective, math.nan)
        if ours.rows < config.min_slice_rows or not (math.isfinite(x) and math.isfinite(y)):
            continue
        changes[name] = change = _improvement(x, y, mode=mode, relative=config.relative)
        limit = config.max_slice_regression
        if limit is not None and _exceeds(-change, limit):
            reasons.append(
                f"slice {name}: {objective} {_fmt(x)} against {_fmt(y)} is worse by "
                f"{_fmt(-change)}{unit}, more than the allowed {_fmt(limit)}"
            )
    promote = not reasons
    if promote:
        reasons.append(f"{shown}: improvement {_fmt(improvement)}{unit}")
    return GateDecision(
        promote,
        tuple(reasons),
        objective,
        mode,
        value,
        reference,
        improvement,
        candidate.fingerprint,
        changes,
    )


def _objective(evaluation: Evaluation, objective: str, config: GateConfig) -> float:
    if config.slice_weights is None:
        return evaluation.overall.metrics.get(objective, math.nan)
    names = set(evaluation.names())
    if missing := sorted(set(config.slice_weights) - names):
        raise InvalidArgument(
            f"slice_weights names slice {missing[0]!r}, which the evaluation does not have "
            f"(it has {', '.join(sorted(names))})"
        )
    weights = config.slice_weights
    total = sum(weights.values())
    return (
        sum(
            w * evaluation.scores(name).metrics.get(objective, math.nan)
            for name, w in weights.items()
        )
        / total
    )


def _improvement(value: float, reference: float, *, mode: str, relative: bool) -> float:
    gain = reference - value if mode == "min" else value - reference
    if not relative:
        return gain
    if reference == 0:
        return math.copysign(math.inf, gain) if gain else 0.0
    return gain / abs(reference)


def _exceeds(value: float, bound: float) -> bool:
    """value > bound beyond rounding: 0.50 - 0.45 meets a minimum of 0.05."""
    return value > bound and not math.isclose(value, bound, rel_tol=1e-9, abs_tol=1e-12)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def decide_and_promote(
    registry: Registry,
    decision: GateDecision,
    *,
    candidate: ModelVersion,
    champion: ModelVersion | None,
    alias: str = CHAMPION,
) -> Artifact:
    """Record `decision` about `candidate` (against `champion`) and, if it promotes, point
    `alias` at the candidate; returns the GateDecision artifact.

    Refuses when the alias no longer points at `champion` (it moved since the
    evaluations were made) or when the decision was taken without the champion.
    """
    store = registry.store
    name = candidate.name
    if champion is not None and champion.name != name:
        raise InvalidArgument(f"the champion {champion} is not a version of {name!r}")
    if champion is not None and decision.champion_value is None:
        raise InvalidArgument(f"the decision was taken without {champion}'s evaluation")
    if champion is None and decision.champion_value is not None:
        raise InvalidArgument("the decision was taken against a champion; name it")
    current = registry.aliases(name).get(alias)
    expected = champion.version if champion is not None else None
    if current != expected:
        raise FailedPrecondition(
            f"{name}:{alias} points at version {current}, not {expected} as when the gate "
            "compared; evaluate against the current champion again"
        )
    for record_type in TYPES:
        store.put_type(record_type)
    inputs: dict[str, Artifact] = {"candidate": store.get_artifact(candidate.artifact_id)}
    if champion is not None:
        inputs["champion"] = store.get_artifact(champion.artifact_id)
    for role, version in (("candidate", candidate), ("champion", champion)):
        if version is not None and decision.fingerprint:
            found = find_evaluations(store, name, version.version, fingerprint=decision.fingerprint)
            if found:
                inputs[f"{role}_evaluation"] = found[0]
    recorded = _record(store, decision, name=name, alias=alias, inputs=inputs)
    if decision.promote:
        registry.set_alias(
            name,
            alias,
            candidate.version,
            reason=f"gate decision {recorded.id}: {decision.reasons[0]}",
        )
    return recorded


def _record(
    store: MetadataStore,
    decision: GateDecision,
    *,
    name: str,
    alias: str,
    inputs: dict[str, Artifact],
) -> Artifact:
    properties: dict[str, Any] = {
        "model": name,
        "alias": alias,
        "candidate_version": int(str(inputs["candidate"].properties["version"])),
        "promote": decision.promote,
        "objective": decision.objective,
    }
    if "champion" in inputs:
        properties["champion_version"] = int(str(inputs["champion"].properties["version"]))
    values = {
        "candidate_value": decision.candidate_value,
        "champion_value": decision.champion_value,
        "improvement": decision.improvement,
    }
    custom: dict[str, Any] = {
        "reasons": list(decision.reasons),
        "mode": decision.mode,
        "fingerprint": decision.fingerprint,
        # NaN and infinity are no property values: an undefined number is left out.
        **{k: v for k, v in values.items() if v is not None and math.isfinite(v)},
    }
    now = to_datetime(time.time())
    context = store.find_context(REGISTERED_MODEL, name)
    written = store.put_execution(
        Execution(GATE, state=ExecutionState.COMPLETE, start_time=now, end_time=now,
                  properties={"model": name, "promote": decision.promote}),
        inputs=inputs,
        outputs={"decision": Artifact(GATE_DECISION, properties=properties,
                                      custom_properties=custom)},
        contexts=[context] if context is not None else [],
    )  # fmt: skip
    return written.outputs["decision"]


def find_decisions(store: MetadataStore, name: str) -> list[Artifact]:
    """The gate decisions recorded for a model, newest first."""
    return store.find_artifacts(type=GATE_DECISION, properties={"model": name}, newest_first=True)
