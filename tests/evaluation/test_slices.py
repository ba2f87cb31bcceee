"""Slices by column value, numeric bucket and predicate: names, row counts, bad specs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ratchet.errors import InvalidArgument
from ratchet.evaluation import Buckets, Predicate, Values, evaluate, score
from ratchet.evaluation.slices import masks, slicers
from ratchet.training.bundle import Bundle

TABLE = pa.table(
    {
        "plan": ["basic", "pro", "basic", None, "team", "basic"],
        "age": [17.0, 18.0, 29.9, 30.0, None, 70.0],
        "spend": [1, 5, 200, 150, 0, 99],
    }
)


def counts(specs: object) -> dict[str, int]:
    return {name: int(mask.sum()) for _, name, mask in masks(TABLE, slicers(specs))}  # type: ignore[arg-type]


def test_value_slices_count_every_row_once() -> None:
    found = counts(["plan"])
    assert counts({"plan": "values"}) == counts({"plan": "column"}) == found
    assert found == {"plan=(missing)": 1, "plan=basic": 3, "plan=pro": 1, "plan=team": 1}
    # Past the limit, the least frequent values share one slice.
    assert counts([Values("plan", limit=1)]) == {"plan=basic": 3, "plan=(other)": 3}


def test_bucket_slices_include_both_tails_and_missing_values() -> None:
    found = counts({"age": [18, 30]})
    assert found == {"age<18": 1, "18<=age<30": 2, "age>=30": 2, "age=(missing)": 1}
    assert counts([Buckets("spend", (100.5,))]) == {"spend<100.5": 4, "spend>=100.5": 2}


def test_predicate_slices_take_arrow_or_numpy_masks() -> None:
    found = counts(
        {
            "big spenders": lambda t: pc.greater(t["spend"], 100),
            "adults": lambda t: np.asarray(t["age"].fill_null(0).to_numpy() >= 18),
        }
    )
    assert found == {"big spenders": 2, "adults": 4}
    # A null in the predicate's answer is not a match.
    assert counts([Predicate("grown", lambda t: pc.greater_equal(t["age"], 30))]) == {"grown": 2}


def test_bad_slices_are_one_clear_error() -> None:
    with pytest.raises(InvalidArgument, match="slice column 'nope' is not in the data"):
        counts(["nope"])
    with pytest.raises(InvalidArgument, match="must be numeric"):
        counts({"plan": [1, 2]})
    with pytest.raises(InvalidArgument, match="must increase"):
        Buckets("age", (30, 18))
    with pytest.raises(InvalidArgument, match="must return 6 booleans"):
        counts({"odd": lambda t: [1, 0, 1]})
    with pytest.raises(InvalidArgument, match="'broken': the predicate raised KeyError") as e:
        counts({"broken": lambda t: t["missing column"]})
    assert isinstance(e.value.__cause__, KeyError)  # the user's error is kept as the cause
    with pytest.raises(InvalidArgument, match="two slices are named 'plan="):
        counts(["plan", "plan"])
    with pytest.raises(InvalidArgument, match="give 'values', a list of bucket edges"):
        counts({"plan": 3})


def test_evaluate_scores_each_slice_on_its_rows(raw_test: pa.Table, logistic: Bundle) -> None:
    evaluation = evaluate(
        logistic,
        raw_test,
        slices={"color": "values", "a": [0.0], "b high": lambda t: pc.greater(t["b"], 0.5)},
    )
    colors = raw_test.column("color").to_pylist()
    assert {s.name: s.rows for s in evaluation.slices if s.group == "color"} == {
        f"color={c}": colors.count(c) for c in set(colors)
    }
    assert sum(s.rows for s in evaluation.slices if s.group == "a") == raw_test.num_rows
    # A slice's scores are the scores of its rows alone.
    red = raw_test.filter(pc.equal(raw_test["color"], "red"))
    alone = score(
        logistic.task, logistic.task.encode(red["churned"].to_numpy()), logistic.predict_table(red)
    )
    assert evaluation.scores("color=red").metrics == pytest.approx(dict(alone.metrics))
    high = evaluation.scores("b high")
    assert high.group == "b high" and high.rows == pc.sum(pc.greater(raw_test["b"], 0.5)).as_py()
