"""Evaluate a task's `triggerPolicy.condition` from compiled KFP IR, safely and without eval.

Owns the grammar of those conditions — the small subset of CEL that the KFP compiler
writes for `dsl.If`, `dsl.Elif`, `dsl.Else` and `dsl.Condition` — and its evaluation
against a task's resolved input parameters. It does not resolve those parameters nor
decide what happens to a task whose condition is false: that is the runner's job.

The grammar, loosest binding first (CEL's precedence; comparisons do not chain)::

    or       := and ('||' and)*
    and      := relation ('&&' relation)*
    relation := unary [('==' | '!=' | '<' | '<=' | '>' | '>=') unary]
    unary    := '!' unary | '-' unary | primary
    primary  := '(' or ')' | 'true' | 'false' | INT | DOUBLE | STRING
              | ('int' | 'double') '(' or ')'
              | 'inputs' '.' 'parameter_values' '[' STRING ']'

What the compiler emits, for example::

    int(inputs.parameter_values['pipelinechannel--make-Output']) > 4
    inputs.parameter_values['pipelinechannel--f'] >= 1e-05
    inputs.parameter_values['pipelinechannel--f'] < double(int(inputs.parameter_values['i']))
    !(inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads') && ...

Values compare as in CEL: ints and doubles compare numerically, values of different types
are never equal, and ordering values of different types is an error.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ratchet.errors import InvalidArgument

__all__ = ["evaluate", "referenced_parameters"]

_TOKEN = re.compile(
    r"(?P<double>[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)|(?P<int>[0-9]+)"
    r"|(?P<string>'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>&&|\|\||[=!<>]=|[-<>!()\[\].])"
)
_ESCAPE = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-3][0-7]{2})|(.))"
)
_SIMPLE_ESCAPES = dict(zip("abfnrtv\\'\"`?", "\a\b\f\n\r\t\v\\'\"`?", strict=True))
_ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_COMPARISONS = {"==", "!=", *_ORDERINGS}
_INT = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CASTS = {"int", "double"}  # the only conversions the compiler writes

_Expr = Callable[[Mapping[str, Any]], Any]
"""A parsed condition: the task's parameter values in, the condition's value out."""


class _Invalid(Exception):
    """Why a condition cannot be parsed or evaluated; the public functions add the condition."""


@dataclass(frozen=True)
class _Token:
    kind: str  # a group name of _TOKEN
    text: str
    pos: int


def evaluate(condition: str, parameter_values: Mapping[str, Any]) -> bool:
    """Return the truth of `condition` given the task's resolved input parameters.

    Raises `InvalidArgument` for a construct outside the grammar above, a parameter
    missing from `parameter_values` (even one that short-circuiting would skip), or
    values the operators cannot take.
    """
    try:
        parser = _Parser(condition)
        expr = parser.parse()
        for name in parser.parameters:
            if name not in parameter_values:
                raise _Invalid(f"parameter {name!r} is not among the task's inputs")
        return _boolean(expr(parameter_values), "the condition")
    except (_Invalid, RecursionError) as error:
        raise _quoting(condition, error) from None


def referenced_parameters(condition: str) -> list[str]:
    """The parameter names `condition` reads, in order of first use; parses it fully.

    Raises `InvalidArgument` for a construct outside the grammar, so it doubles as the
    check, before anything runs, that a condition is supported.
    """
    try:
        parser = _Parser(condition)
        parser.parse()
        return list(parser.parameters)
    except (_Invalid, RecursionError) as error:
        raise _quoting(condition, error) from None


def _quoting(condition: str, error: Exception) -> InvalidArgument:
    reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
    return InvalidArgument(f"condition {condition!r}: {reason}")


class _Parser:
    """Recursive descent over the grammar, building the condition as nested closures."""

    def __init__(self, condition: str) -> None:
        self.tokens = list(_tokenize(condition))
        self.index = 0
        self.parameters: dict[str, None] = {}  # an ordered set of the names read

    def parse(self) -> _Expr:
        expr = self.disjunction()
        if self.index < len(self.tokens):
            raise self.unexpected()
        return expr

    def disjunction(self) -> _Expr:
        return self.logical("||", lambda: self.logical("&&", self.relation))

    def logical(self, op: str, operand: Callable[[], _Expr]) -> _Expr:
        args = [operand()]
        while self.take(op):
            args.append(operand())
        if len(args) == 1:
            return args[0]
        settles = op == "||"  # the operand value that decides the whole chain

        def run(values: Mapping[str, Any]) -> bool:
            decided = any(_boolean(arg(values), op) is settles for arg in args)
            return settles if decided else not settles

        return run

    def relation(self) -> _Expr:
        left = self.unary()
        token = self.peek()
        if token is None or token.kind != "op" or token.text not in _COMPARISONS:
            return left
        self.index += 1
        op, right = token.text, self.unary()
        return lambda values: _compare(op, left(values), right(values))

    def unary(self) -> _Expr:
        if self.take("!"):
            negated = self.unary()
            return lambda values: not _boolean(negated(values), "!")
        if self.take("-"):
            arg = self.unary()
            return lambda values: _negative(arg(values))
        return self.primary()

    def primary(self) -> _Expr:
        token = self.consume()
        value: Any
        if token.kind == "op" and token.text == "(":
            expr = self.disjunction()
            self.expect(")")
            return expr
        if token.kind in ("int", "double", "string"):
            convert: Callable[[str], Any] = {"int": int, "double": float}.get(token.kind, _unquote)
            value = convert(token.text)
        elif token.kind == "name" and token.text in ("true", "false"):
            value = token.text == "true"
        elif token.kind == "name" and token.text in _CASTS:
            self.expect("(")
            func, arg = token.text, self.disjunction()
            self.expect(")")
            return lambda values: _cast(func, arg(values))
        elif token.kind == "name" and token.text == "inputs":
            for text in (".", "parameter_values", "["):
                self.expect(text)
            name = _unquote(self.consume("string").text)
            self.expect("]")
            self.parameters[name] = None
            return lambda values: values[name]
        else:
            self.index -= 1
            raise self.unexpected()
        return lambda _: value

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def consume(self, kind: str | None = None) -> _Token:
        token = self.peek()
        if token is None or kind not in (None, token.kind):
            raise self.unexpected(f"expected a {kind}" if kind else "")
        self.index += 1
        return token

    def take(self, text: str) -> bool:
        token = self.peek()
        if token is None or token.kind not in ("op", "name") or token.text != text:
            return False
        self.index += 1
        return True

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise self.unexpected(f"expected {text!r}")

    def unexpected(self, expected: str = "") -> _Invalid:
        token = self.peek()
        found = "end" if token is None else f"{token.text!r} at column {token.pos + 1}"
        return _Invalid(f"unexpected {found}" + (f", {expected}" if expected else ""))


def _tokenize(condition: str) -> Iterator[_Token]:
    pos = 0
    while pos < len(condition):
        if condition[pos].isspace():
            pos += 1
            continue
        match = _TOKEN.match(condition, pos)
        if match is None or match.lastgroup is None:
            raise _Invalid(f"unexpected {condition[pos]!r} at column {pos + 1}")
        yield _Token(match.lastgroup, match.group(), pos)
        pos = match.end()


def _unquote(literal: str) -> str:
    """The value of a CEL string literal, quotes removed and escapes decoded."""

    def decode(escape: re.Match[str]) -> str:
        *codes, char = escape.groups()
        if char is not None and char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        for base, code in zip((16, 16, 16, 8), codes, strict=True):
            if code is not None and int(code, base) <= 0x10FFFF:
                return chr(int(code, base))
        raise _Invalid(f"invalid escape {escape.group()} in {literal}")

    return _ESCAPE.sub(decode, literal[1:-1])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{where} needs true or false, got {value!r}")
    return value


def _negative(value: Any) -> Any:
    if not _is_number(value):
        raise _Invalid(f"cannot negate {value!r}")
    return -value


def _compare(op: str, left: Any, right: Any) -> bool:
    numbers = _is_number(left) and _is_number(right)
    if op in ("==", "!="):
        # as in CEL, values of different types are unequal rather than an error
        equal = (numbers or type(left) is type(right)) and bool(left == right)
        return equal is (op == "==")
    if numbers or (type(left) is type(right) and isinstance(left, str | bool)):
        return bool(_ORDERINGS[op](left, right))
    raise _Invalid(f"cannot compare {left!r} {op} {right!r}")


def _cast(func: str, value: Any) -> Any:
    """CEL's `int()` and `double()`, on the values a task's parameters can hold."""
    number, text = _is_number(value), isinstance(value, str)
    if func == "int" and ((number and math.isfinite(value)) or (text and _INT.fullmatch(value))):
        return int(value)  # CEL truncates a double toward zero, as int() does
    if func == "double" and (number or (text and _DOUBLE.fullmatch(value))):
        return float(value)
    raise _Invalid(f"cannot convert {value!r} with {func}()")
