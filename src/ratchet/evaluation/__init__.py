"""Evaluation of registered models on identical rows, on slices, and the promotion gate.

    evaluation = evaluate(bundle, raw_test, slices={"plan": "values", "age": [18, 65]})
    record_evaluation(store, artifacts, evaluation, model_version=version,
                      dataset_version=dataset.sha256)
    decision = gate(evaluation, champion_evaluation, GateConfig(min_improvement=0.002))
    decide_and_promote(registry, decision, candidate=version, champion=champion)

The modules: `metrics` (metric functions, pure), `slices` (which rows), `report`
(`Evaluation`, `evaluate`, the row fingerprint, `compare`), `recording` (the
stores) and `gate` (`GateConfig`, `gate`, `decide_and_promote`). Training and
bundles are `ratchet.training`'s, versions and aliases `ratchet.registry`'s.
"""

from ratchet.evaluation.gate import (
    GateConfig,
    GateDecision,
    decide_and_promote,
    find_decisions,
    gate,
)
from ratchet.evaluation.metrics import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    CalibrationBin,
    Scores,
    score,
)
from ratchet.evaluation.recording import find_evaluations, load_evaluation, record_evaluation
from ratchet.evaluation.report import (
    Comparison,
    Evaluation,
    check_comparable,
    compare,
    evaluate,
    row_fingerprint,
)
from ratchet.evaluation.slices import OVERALL, Buckets, Predicate, Values

__all__ = [
    "CLASSIFICATION_METRICS",
    "HIGHER_IS_BETTER",
    "OVERALL",
    "REGRESSION_METRICS",
    "Buckets",
    "CalibrationBin",
    "Comparison",
    "Evaluation",
    "GateConfig",
    "GateDecision",
    "Predicate",
    "Scores",
    "Values",
    "check_comparable",
    "compare",
    "decide_and_promote",
    "evaluate",
    "find_decisions",
    "find_evaluations",
    "gate",
    "load_evaluation",
    "record_evaluation",
    "row_fingerprint",
    "score",
]
