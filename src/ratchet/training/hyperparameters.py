"""Hyperparameter specs: what a trainer accepts, checked before any training starts.

Owns `Param` (a name, a kind, a default and its allowed values) and
`check_hyperparameters`, which fills defaults and refuses unknown names, wrong
types and out-of-range values with one clear message. Tuning search spaces are
a different thing (`ratchet.tuning`); a trainer's spec says what is legal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ratchet.errors import InvalidArgument

KINDS = ("float", "int", "bool", "categorical", "int_list", "text")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Any  # None: optional, left out unless given
    low: float | None = None  # inclusive bounds for numbers (and for each item of an int_list)
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, value: Any) -> Any:
        where = f"hyperparameter {self.name!r}"
        if self.kind == "categorical":
            if value not in self.choices:
                raise InvalidArgument(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.kind == "text":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise InvalidArgument(f"{where} must be text, got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidArgument(f"{where} must be true or false, got {value!r}")
            return value
        if self.kind == "int_list":
            items = value if isinstance(value, list | tuple) else [value]
            return [self._number(item, int, where) for item in items]
        return self._number(value, float if self.kind == "float" else int, where)

    def _number(self, value: Any, kind: type, where: str) -> Any:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int and ok and float(value).is_integer():
            value = int(value)
        elif not ok or kind is int:
            raise InvalidArgument(f"{where} must be a {kind.__name__}, got {value!r}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise InvalidArgument(f"{where} must be in [{self.low}, {self.high}], got {value!r}")
        return kind(value)


def check_hyperparameters(spec: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` checked against `spec`, with defaults for what is not given."""
    by_name = {p.name: p for p in spec}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise InvalidArgument(
            f"unknown hyperparameter {unknown[0]!r}; this trainer takes {', '.join(by_name)}"
        )
    return {p.name: p.check(values[p.name]) if p.name in values else p.default for p in spec}
