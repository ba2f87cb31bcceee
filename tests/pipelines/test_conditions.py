"""Conditions as the KFP compiler writes them, evaluated without eval.

Every condition here is taken from a pipeline compiled with kfp's own compiler, and
where kfp.local's eval-based `ConditionEvaluator` can read it, both must agree.
"""

import itertools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import yaml
from kfp import compiler, dsl
from kfp.local import io
from kfp.local.orchestrator import enhanced_dag_orchestrator

from ratchet.errors import InvalidArgument
from ratchet.pipelines.conditions import evaluate, referenced_parameters

PREFIX = "pipelinechannel--"
INT, FLOAT, STR, BOOL = (f"{PREFIX}{name}" for name in "ifsb")
INT_OUT, FLOAT_OUT, STR_OUT, BOOL_OUT = (
    f"{PREFIX}make-{kind}-Output" for kind in ("int", "float", "str", "bool")
)


@dsl.component(base_image="python:3.11")
def make_int() -> int:
    return 3


@dsl.component(base_image="python:3.11")
def make_float() -> float:
    return 3.5


@dsl.component(base_image="python:3.11")
def make_str() -> str:
    return "heads"


@dsl.component(base_image="python:3.11")
def make_bool() -> bool:
    return True


@dsl.component(base_image="python:3.11")
def noop() -> None:
    pass


def compiled_conditions(pipeline: Callable[..., Any], tmp_path: Path) -> list[str]:
    """Every `triggerPolicy.condition` in the compiled IR, in the order the tasks were defined."""
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    spec = yaml.safe_load(path.read_text())
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    found = {
        name: task["triggerPolicy"]["condition"]
        for dag in dags
        for name, task in dag["tasks"].items()
        if "condition" in task.get("triggerPolicy", {})
    }
    # the compiler numbers control-flow groups as they are entered: condition-1, condition-2, …
    return [found[name] for name in sorted(found, key=lambda n: int(n.rsplit("-", 1)[1]))]


def kfp_local(condition: str, values: Mapping[str, Any]) -> bool | None:
    """kfp.local's answer, or None where it logs that it could not evaluate the condition."""
    store = io.IOStore()
    for key, value in values.items():
        name = key.removeprefix(PREFIX)
        if name.endswith("-Output"):
            store.put_task_output(name.removesuffix("-Output"), "Output", value)
        else:
            store.put_parent_input(name, value)
    with mock.patch.object(enhanced_dag_orchestrator.logging, "warning") as warning:
        answer = enhanced_dag_orchestrator.ConditionEvaluator.evaluate_condition(condition, store)
    return None if warning.called else bool(answer)


def assert_agrees_with_kfp_local(condition: str, values: Mapping[str, Any]) -> None:
    # kfp.local's eval knows no `double`, rewrites `!(` but not a bare `!`, and pastes values
    # into Python source, so a quote, backslash or newline in a string value misleads it
    if (
        "double(" in condition
        or re.search(r"!(?![(=])", condition)
        or any(isinstance(v, str) and re.search(r"['\"\\\n]", v) for v in values.values())
    ):
        return
    assert kfp_local(condition, values) is evaluate(condition, values), (condition, values)


# One `dsl.If` per case over pipeline parameters i, f, s, b and task outputs n, x, t, y
# (int, float, str, bool): what the compiler writes, and its truth for some values.
OPERAND_CASES: list[tuple[str, Callable[[Any], Any], str, list[tuple[dict[str, Any], bool]]]] = [
    (
        "int-output-vs-constant",
        lambda c: c.n > 4,
        f"int(inputs.parameter_values['{INT_OUT}']) > 4",
        [({INT_OUT: 5}, True), ({INT_OUT: 4}, False)],
    ),
    (
        "int-param-vs-int-output",
        lambda c: c.i == c.n,
        f"int(inputs.parameter_values['{INT}']) == int(inputs.parameter_values['{INT_OUT}'])",
        [({INT: 3, INT_OUT: 3}, True), ({INT: 3, INT_OUT: 2}, False)],
    ),
    (
        "constant-on-the-left-is-reflected",
        lambda c: 4 < c.i,  # noqa: SIM300 - what this case is about
        f"int(inputs.parameter_values['{INT}']) > 4",
        [({INT: 5}, True), ({INT: 4}, False)],
    ),
    (
        "negative-constant",
        lambda c: c.i != -2,
        f"int(inputs.parameter_values['{INT}']) != -2",
        [({INT: -2}, False), ({INT: 2}, True)],
    ),
    (
        "le",
        lambda c: c.i <= 4,
        f"int(inputs.parameter_values['{INT}']) <= 4",
        [({INT: 4}, True), ({INT: 5}, False)],
    ),
    (
        "float-output-vs-int-constant",
        lambda c: c.x > 4,
        f"inputs.parameter_values['{FLOAT_OUT}'] > double(4)",
        [({FLOAT_OUT: 4.5}, True), ({FLOAT_OUT: 4.0}, False)],
    ),
    (
        "float-param-vs-exponent",
        lambda c: c.f >= 1e-5,
        f"inputs.parameter_values['{FLOAT}'] >= 1e-05",
        [({FLOAT: 1e-5}, True), ({FLOAT: 0.0}, False), ({FLOAT: 1}, True)],
    ),
    (
        "float-vs-big-float",
        lambda c: c.f < 1e20,
        f"inputs.parameter_values['{FLOAT}'] < 1e+20",
        [({FLOAT: 1e19}, True), ({FLOAT: 1e21}, False)],
    ),
    (
        "float-vs-negative-float",
        lambda c: c.f > -0.5,
        f"inputs.parameter_values['{FLOAT}'] > -0.5",
        [({FLOAT: -0.25}, True), ({FLOAT: -1.0}, False)],
    ),
    (
        "float-param-vs-int-param",
        lambda c: c.f == c.i,
        f"inputs.parameter_values['{FLOAT}'] == double(int(inputs.parameter_values['{INT}']))",
        [({FLOAT: 3.0, INT: 3}, True), ({FLOAT: 3.5, INT: 3}, False)],
    ),
    (
        "int-param-vs-float-constant",
        lambda c: c.i > 2.5,
        f"double(int(inputs.parameter_values['{INT}'])) > 2.5",
        [({INT: 3}, True), ({INT: 2}, False)],
    ),
    (
        "str-output-vs-constant",
        lambda c: c.t == "heads",
        f"inputs.parameter_values['{STR_OUT}'] == 'heads'",
        [({STR_OUT: "heads"}, True), ({STR_OUT: "tails"}, False)],
    ),
    (
        "str-param-vs-str-output",
        lambda c: c.s != c.t,
        f"inputs.parameter_values['{STR}'] != inputs.parameter_values['{STR_OUT}']",
        [({STR: "a", STR_OUT: "a"}, False), ({STR: "a", STR_OUT: "b"}, True)],
    ),
    (
        "str-ordering",
        lambda c: c.s > "b",
        f"inputs.parameter_values['{STR}'] > 'b'",
        [({STR: "c"}, True), ({STR: "a"}, False)],
    ),
    (
        "str-vs-int-constant-quotes-it",
        lambda c: c.s == 4,
        f"inputs.parameter_values['{STR}'] == '4'",
        [({STR: "4"}, True), ({STR: "4.0"}, False)],
    ),
    (
        "str-vs-bool-constant-quotes-it",
        lambda c: c.s == True,  # noqa: E712 - the comparison builds a condition
        f"inputs.parameter_values['{STR}'] == 'true'",
        [({STR: "true"}, True), ({STR: "True"}, False)],
    ),
    (
        "str-with-double-quotes-and-escape",
        lambda c: c.s == 'say "hi"\\n',
        f"inputs.parameter_values['{STR}'] == 'say \"hi\"\\n'",
        # CEL (and kfp.local's eval) decode the backslash the compiler copied verbatim
        [({STR: 'say "hi"\n'}, True), ({STR: 'say "hi"\\n'}, False)],
    ),
    (
        "bool-param-vs-true",
        lambda c: c.b == True,  # noqa: E712
        f"inputs.parameter_values['{BOOL}'] == true",
        [({BOOL: True}, True), ({BOOL: False}, False)],
    ),
    (
        "bool-output-vs-false",
        lambda c: c.y != False,  # noqa: E712
        f"inputs.parameter_values['{BOOL_OUT}'] != false",
        [({BOOL_OUT: True}, True), ({BOOL_OUT: False}, False)],
    ),
    (
        # kfp turns an int constant compared with a bool into `0 → true, else false`
        "bool-vs-int-constant-is-inverted-by-the-compiler",
        lambda c: c.b == 1,
        f"inputs.parameter_values['{BOOL}'] == false",
        [({BOOL: True}, False), ({BOOL: False}, True)],
    ),
]


@pytest.mark.parametrize(
    ("make_condition", "emitted", "cases"),
    [case[1:] for case in OPERAND_CASES],
    ids=[case[0] for case in OPERAND_CASES],
)
def test_compiled_operands(
    tmp_path: Path,
    make_condition: Callable[[Any], Any],
    emitted: str,
    cases: list[tuple[dict[str, Any], bool]],
) -> None:
    @dsl.pipeline(name="operands")
    def pipeline(i: int = 0, f: float = 0.0, s: str = "", b: bool = False) -> None:
        outputs = (make_int(), make_float(), make_str(), make_bool())
        n, x, t, y = (task.output for task in outputs)
        with dsl.If(make_condition(SimpleNamespace(i=i, f=f, s=s, b=b, n=n, x=x, t=t, y=y))):
            noop()

    (condition,) = compiled_conditions(pipeline, tmp_path)
    assert condition == emitted
    for values, expected in cases:
        assert evaluate(condition, values) is expected, values
        assert referenced_parameters(condition) == list(values)
        assert_agrees_with_kfp_local(condition, values)


@pytest.mark.parametrize(
    "make_condition",
    [lambda c: c.i == "4", lambda c: c.b == "x", lambda c: c.s == "it's"],
    ids=["int-vs-str-constant", "bool-vs-str-constant", "str-constant-with-quote"],
)
def test_conditions_the_compiler_garbles_are_rejected(
    tmp_path: Path, make_condition: Callable[[Any], Any]
) -> None:
    # e.g. `'int(inputs.parameter_values['pipelinechannel--i'])' == '4'`: the compiler quotes
    # the whole cast, or a string constant without escaping it; CEL cannot parse these either
    @dsl.pipeline(name="garbled")
    def pipeline(i: int = 0, s: str = "", b: bool = False) -> None:
        with dsl.If(make_condition(SimpleNamespace(i=i, s=s, b=b))):
            noop()

    (condition,) = compiled_conditions(pipeline, tmp_path)
    with pytest.raises(InvalidArgument, match=r"^condition .*: unexpected"):
        referenced_parameters(condition)


def test_if_elif_else_takes_exactly_one_branch(tmp_path: Path) -> None:
    @dsl.pipeline(name="chain")
    def pipeline(s: str = "x") -> None:
        flip = make_str()
        with dsl.If(flip.output == "heads"):
            noop()
        with dsl.Elif(flip.output == "tails"):
            noop()
        with dsl.Elif(s == "edge"):
            noop()
        with dsl.Else():
            noop()

    conditions = compiled_conditions(pipeline, tmp_path)
    assert conditions[1] == (
        f"!(inputs.parameter_values['{STR_OUT}'] == 'heads') && "
        f"inputs.parameter_values['{STR_OUT}'] == 'tails'"
    )
    expected = {("heads", "edge"): 0, ("tails", "x"): 1, ("side", "edge"): 2, ("side", "x"): 3}
    for (flip, s), branch in expected.items():
        values = {STR_OUT: flip, STR: s}
        truths = [evaluate(c, {k: values[k] for k in referenced_parameters(c)}) for c in conditions]
        assert truths == [i == branch for i in range(4)], (flip, s)
        for condition in conditions:
            assert_agrees_with_kfp_local(condition, values)


def test_numeric_elif_chain_and_the_older_dsl_condition(tmp_path: Path) -> None:
    @dsl.pipeline(name="numeric-chain")
    def pipeline() -> None:
        n = make_int().output
        with dsl.If(n > 4):
            noop()
        with dsl.Elif(n == 4):
            noop()
        with dsl.Elif(n >= 0):
            noop()
        with dsl.Else():
            noop()
        with pytest.warns(DeprecationWarning), dsl.Condition(n < 0):
            noop()

    *chain, older = compiled_conditions(pipeline, tmp_path)
    for value, branch in [(9, 0), (4, 1), (0, 2), (-3, 3)]:
        assert [evaluate(c, {INT_OUT: value}) for c in chain] == [i == branch for i in range(4)]
        assert evaluate(older, {INT_OUT: value}) is (value < 0)
        for condition in [*chain, older]:
            assert_agrees_with_kfp_local(condition, {INT_OUT: value})


def test_nested_conditions_live_in_sub_dags(tmp_path: Path) -> None:
    @dsl.pipeline(name="nested")
    def pipeline(i: int = 0, s: str = "") -> None:
        with dsl.If(i > 1):
            with dsl.If(s == "b"):
                noop()
            with dsl.Else():
                noop()

    outer, inner, otherwise = compiled_conditions(pipeline, tmp_path)
    assert outer == f"int(inputs.parameter_values['{INT}']) > 1"
    assert otherwise == f"!(inputs.parameter_values['{STR}'] == 'b')"
    for s in ("b", "c"):
        assert evaluate(inner, {STR: s}) is not evaluate(otherwise, {STR: s})


def test_conditions_over_loop_items(tmp_path: Path) -> None:
    @dsl.pipeline(name="loops")
    def pipeline(numbers: list = [1]) -> None:  # noqa: B006 - a kfp default, never mutated
        with dsl.ParallelFor([1, 2, 3], parallelism=2) as item:
            with dsl.If(item == 1):
                noop()
            with dsl.Elif(item == 2):
                noop()
            with dsl.Else():
                noop()
        with dsl.ParallelFor([{"a": 1.5}]) as record, dsl.If(record.a == 1.5):
            noop()
        with dsl.ParallelFor(["x", "y"]) as word, dsl.If(word == "x"):
            noop()
        with dsl.ParallelFor(numbers) as number, dsl.If(number == 1):
            noop()
        with dsl.ParallelFor([{"a": "x", "b": 2}]) as mixed, dsl.If(mixed.b > 1):
            noop()

    *chain, on_field, on_word, on_number, on_mixed = compiled_conditions(pipeline, tmp_path)
    (key,) = referenced_parameters(chain[0])
    assert re.fullmatch(r"pipelinechannel--loop-item-param-\d+", key)
    for item in (1, 2, 3):
        assert [evaluate(c, {key: item}) for c in chain] == [item == 1, item == 2, item == 3]
        for condition in chain:
            assert_agrees_with_kfp_local(condition, {key: item})
    (field,) = referenced_parameters(on_field)
    assert field.endswith("-subvar-a")
    assert evaluate(on_field, {field: 1.5}) and not evaluate(on_field, {field: 2.5})
    (word,) = referenced_parameters(on_word)
    assert evaluate(on_word, {word: "x"}) and not evaluate(on_word, {word: "y"})

    # items of an untyped list parameter are typed as strings, so the constant is quoted
    # and an int item never equals it: false, as on a cluster and in kfp.local
    (number,) = referenced_parameters(on_number)
    assert on_number == f"inputs.parameter_values['{number}'] == '1'"
    assert evaluate(on_number, {number: 1}) is kfp_local(on_number, {number: 1}) is False

    # every field of a dict item gets the type of the first dict's first value (here str)
    (mixed,) = referenced_parameters(on_mixed)
    assert on_mixed == f"inputs.parameter_values['{mixed}'] > '1'"
    with pytest.raises(InvalidArgument, match="cannot compare 2 > '1'"):
        evaluate(on_mixed, {mixed: 2})


# Unit tests of the grammar, on hand-written conditions.


def p(name: str) -> str:
    return f"inputs.parameter_values['{name}']"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("1 == 1", True),
        ("1 != 1", False),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("2 > 2", False),
        ("2 >= 3", False),
        ("'a' < 'b'", True),
        ("\"a\" == 'a'", True),
        ("false < true", True),
        ("double(4) == 4", True),  # ints and doubles compare numerically
        ("1 == 1.0", True),
        (".5 == 0.5", True),
        ("2e3 == 2000", True),
        ("-2 < -1", True),
        ("--2 == 2", True),
        ("'1' == 1", False),  # different types are unequal, as in CEL, not an error
        ("true == 1", False),
        ("'1' != 1", True),
        ("int(4.9) == 4", True),
        ("int(-4.9) == -4", True),
        ("int('12') == 12", True),
        ("double('2.5') == 2.5", True),
        ("'it\\'s\\t\\x41\\u00e9\\101' == \"it's\tAéA\"", True),
        ("true", True),
        ("!false", True),
        ("!!true", True),
        ("true || false && false", True),  # && binds tighter than ||
        ("(true || false) && false", False),
        ("1 < 2 && 2 < 3", True),  # comparisons bind tighter than &&
        ("  ( ( 1 == 1 ) )  ", True),
    ],
)
def test_operators(condition: str, expected: bool) -> None:
    assert evaluate(condition, {}) is expected


def test_precedence_of_not_and_or() -> None:
    condition = f"!{p('a')} && {p('b')} || {p('c')}"
    for a, b, c in itertools.product((True, False), repeat=3):
        values = {"a": a, "b": b, "c": c}
        assert evaluate(condition, values) is ((not a and b) or c), values
        assert_agrees_with_kfp_local(condition, values)


def test_values_of_other_shapes_compare_by_type() -> None:
    assert evaluate(f"{p('xs')} == {p('ys')}", {"xs": [1, 2], "ys": [1, 2]})
    assert not evaluate(f"{p('d')} == {p('xs')}", {"d": {"a": 1}, "xs": [1]})
    assert not evaluate(f"{p('none')} == 'x'", {"none": None})


def test_referenced_parameters_in_order_of_first_use() -> None:
    condition = f"!({p('b')} == 'x') && int({p('a')}) > 1 || {p('b')} == \"y\""
    assert referenced_parameters(condition) == ["b", "a"]
    assert referenced_parameters("1 < 2") == []
    assert referenced_parameters('inputs.parameter_values["q"] == 1') == ["q"]


@pytest.mark.parametrize(
    ("condition", "values", "reason"),
    [
        ("", {}, "unexpected end"),
        ("1 < 2 < 3", {}, "unexpected '<'"),
        ("1 2", {}, "unexpected '2'"),
        ("(1 == 1", {}, "expected ')'"),
        ("1 = 1", {}, "unexpected '='"),
        ("'open == 1", {}, 'unexpected "\'"'),
        ("inf > 1", {}, "unexpected 'inf'"),  # what the compiler writes for float('inf')
        ("1 < 2 and true", {}, "unexpected 'and'"),
        ("not true", {}, "unexpected 'not'"),
        ("len('a') == 1", {}, "unexpected 'len'"),
        ("string(1) == '1'", {}, "unexpected 'string'"),
        ("__import__('os').system('true')", {}, "unexpected '__import__'"),
        ("inputs.artifacts['a'] == 1", {}, "expected 'parameter_values'"),
        ("inputs.parameter_values[a] == 1", {}, "expected a string"),
        ("inputs.parameter_values['a']['b'] == 1", {"a": {"b": 1}}, "unexpected '['"),
        ("'\\q' == 'q'", {}, "invalid escape"),
        (f"{p('gone')} == 1", {}, "parameter 'gone' is not among the task's inputs"),
        (f"false && {p('gone')} == 1", {}, "parameter 'gone'"),
        ("1", {}, "the condition needs true or false, got 1"),
        ("!1", {}, "! needs true or false"),
        ("1 && true", {}, "&& needs true or false"),
        ("'a' < 1", {}, "cannot compare 'a' < 1"),
        ("-'a' == 1", {}, "cannot negate 'a'"),
        ("int('4.5') == 4", {}, "cannot convert '4.5' with int"),
        (f"int({p('b')}) == 1", {"b": True}, "cannot convert True with int"),
        ("double('x') == 1", {}, "cannot convert 'x' with double"),
        ("(" * 5000 + "true" + ")" * 5000, {}, "nested too deeply"),
    ],
)
def test_errors_are_one_line_invalid_arguments_quoting_the_condition(
    condition: str, values: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        evaluate(condition, values)
    message = str(raised.value)
    assert message.startswith(f"condition {condition!r}: ")
    assert "\n" not in message
    assert reason in message, message
