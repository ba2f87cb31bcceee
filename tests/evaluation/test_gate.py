"""The gate's rule on evaluations with known values: improvement, slices, weights, refusals."""

from __future__ import annotations

import pytest

from ratchet.errors import InvalidArgument
from ratchet.evaluation import Evaluation, GateConfig, Scores, gate
from ratchet.training.task import BINARY, REGRESSION, Task

TASK = Task(BINARY, "churned", ("0", "1"))


def evaluation(
    overall: float, slices: dict[str, float] | None = None, *, rows: int = 100, rows_each: int = 50
) -> Evaluation:
    """An evaluation whose log-loss is `overall`, with slices `plan=...` of given log-loss."""
    return Evaluation(
        TASK,
        "same rows",
        Scores("overall", "", rows, {"log_loss": overall, "roc_auc": 1 - overall}),
        tuple(
            Scores(name, "plan", rows_each, {"log_loss": value, "roc_auc": 1 - value})
            for name, value in (slices or {}).items()
        ),
    )


def test_promotes_when_better_by_the_minimum() -> None:
    champion, candidate = evaluation(0.50), evaluation(0.45)
    decision = gate(candidate, champion, GateConfig(min_improvement=0.05))
    assert decision.promote
    assert (decision.objective, decision.mode) == ("log_loss", "min")
    assert decision.improvement == pytest.approx(0.05)
    assert (decision.candidate_value, decision.champion_value) == (0.45, 0.50)
    assert "improvement 0.05" in decision.reasons[0]
    # Relative: 0.05 is 10% of the champion's 0.5.
    assert gate(candidate, champion, GateConfig(min_improvement=0.1, relative=True)).promote
    assert not gate(candidate, champion, GateConfig(min_improvement=0.11, relative=True)).promote


def test_rejects_with_reasons_when_not_better_enough() -> None:
    champion = evaluation(0.50)
    short = gate(evaluation(0.49), champion, GateConfig(min_improvement=0.02))
    assert not short.promote
    assert short.reasons == (
        "log_loss 0.49 against the champion's 0.5: improvement 0.01 is below the required 0.02",
    )
    worse = gate(evaluation(0.55), champion)
    assert not worse.promote and worse.reasons[0].endswith("not better")
    assert worse.improvement == pytest.approx(-0.05)
    # A tie is not "measurably better", even with no minimum.
    assert not gate(evaluation(0.50), champion).promote


def test_a_maximised_objective() -> None:
    champion, candidate = evaluation(0.50), evaluation(0.40)  # roc_auc 0.5 -> 0.6
    decision = gate(candidate, champion, GateConfig(objective="roc_auc"))
    assert decision.promote and decision.mode == "max"
    assert decision.improvement == pytest.approx(0.1)
    # An explicit mode overrides the metric's own direction.
    assert not gate(candidate, champion, GateConfig(objective="roc_auc", mode="min")).promote


def test_a_slice_regressing_past_the_limit_blocks_an_overall_improvement() -> None:
    champion = evaluation(0.50, {"plan=basic": 0.40, "plan=pro": 0.60})
    candidate = evaluation(0.45, {"plan=basic": 0.43, "plan=pro": 0.47})
    assert gate(candidate, champion).promote  # no slice limit: overall decides
    decision = gate(candidate, champion, GateConfig(max_slice_regression=0.02))
    assert not decision.promote
    assert decision.reasons == (
        "slice plan=basic: log_loss 0.43 against 0.4 is worse by 0.03, more than the allowed 0.02",
    )
    assert decision.slice_changes == pytest.approx({"plan=basic": -0.03, "plan=pro": 0.13})
    assert gate(candidate, champion, GateConfig(max_slice_regression=0.05)).promote
    # Slices too small to judge are not checked.
    small = evaluation(0.45, {"plan=basic": 0.43}, rows_each=10)
    config = GateConfig(max_slice_regression=0.02, min_slice_rows=20)
    assert gate(small, evaluation(0.50, {"plan=basic": 0.40}, rows_each=10), config).promote


def test_weighted_slices_make_the_objective() -> None:
    champion = evaluation(0.50, {"plan=basic": 0.40, "plan=pro": 0.60})
    candidate = evaluation(0.45, {"plan=basic": 0.48, "plan=pro": 0.42})
    # pro weighs 3: champion 0.4*1/4 + 0.6*3/4 = 0.55, candidate 0.48/4 + 0.42*3/4 = 0.435.
    pro_first = gate(
        candidate, champion, GateConfig(slice_weights={"plan=basic": 1, "plan=pro": 3})
    )
    assert pro_first.promote
    assert (pro_first.champion_value, pro_first.candidate_value) == pytest.approx((0.55, 0.435))
    # basic alone: 0.40 -> 0.48 is worse, whatever the overall says.
    basic = gate(candidate, champion, GateConfig(slice_weights={"plan=basic": 1}))
    assert not basic.promote and basic.reasons[0].endswith("not better")
    with pytest.raises(InvalidArgument, match="names slice 'plan=team'"):
        gate(candidate, champion, GateConfig(slice_weights={"plan=team": 1.0}))


def test_no_champion_promotes_and_different_rows_are_refused() -> None:
    first = gate(evaluation(0.7), None)
    assert first.promote and first.reasons == ("no champion",) and first.champion_value is None
    elsewhere = Evaluation(TASK, "other rows", evaluation(0.4).overall)
    with pytest.raises(InvalidArgument, match="different rows"):
        gate(elsewhere, evaluation(0.5))
    upgraded = Task(BINARY, "upgraded", ("0", "1"))
    other_label = Evaluation(upgraded, "same rows", evaluation(0.4).overall)
    with pytest.raises(InvalidArgument, match="different tasks"):
        gate(other_label, evaluation(0.5))


def test_configs_are_checked_where_they_are_made() -> None:
    with pytest.raises(InvalidArgument, match="unknown objective 'auc'"):
        GateConfig(objective="auc")
    with pytest.raises(InvalidArgument, match="mode must be"):
        GateConfig(mode="down")
    with pytest.raises(InvalidArgument, match="min_improvement must be >= 0"):
        GateConfig(min_improvement=-1)
    with pytest.raises(InvalidArgument, match="max_slice_regression"):
        GateConfig(max_slice_regression=-0.1)
    with pytest.raises(InvalidArgument, match="not all be zero"):
        GateConfig(slice_weights={"overall": 0})
    regression = Evaluation(
        Task(REGRESSION, "y"), "rows", Scores("overall", "", 10, {"rmse": 1.0, "mae": 1.0})
    )
    with pytest.raises(InvalidArgument, match="'log_loss' is not a regression metric"):
        gate(regression, regression, GateConfig(objective="log_loss"))
    assert gate(regression, None).objective == "rmse"
