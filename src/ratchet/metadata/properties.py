"""Typed property values: validation against a type's declaration, and the row encoding.

Owns how a Python value becomes one row of a `*_properties` table (a value type
tag and one of three typed columns) and back. It does not run queries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ratchet.errors import InvalidArgument
from ratchet.metadata.records import PropertyType, PropertyValue

#: (value_type, int_value, double_value, string_value)
EncodedValue = tuple[str, int | None, float | None, str | None]

# Integers are stored in a signed 64-bit column on every database.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def property_type_of(value: object) -> PropertyType:
    """The natural property type of a Python value; bool is checked before int on purpose."""
    if isinstance(value, bool):
        return PropertyType.BOOL
    if isinstance(value, int):
        return PropertyType.INT
    if isinstance(value, float):
        return PropertyType.DOUBLE
    if isinstance(value, str):
        return PropertyType.STRING
    if isinstance(value, dict | list):
        return PropertyType.STRUCT
    raise InvalidArgument(
        f"property values must be int, float, str, bool, dict or list, not {type(value).__name__}"
    )


def check_text(what: str, value: str | None) -> None:
    """Refuse text PostgreSQL cannot store (NUL characters), so SQLite refuses it too."""
    if value is not None and "\x00" in value:
        raise InvalidArgument(f"{what} must not contain NUL characters, got {value!r}")


def encode(name: str, value: object, declared: PropertyType | None = None) -> EncodedValue:
    """Encode one value, checking it against the declared type when there is one."""
    check_text("property names", name)
    actual = property_type_of(value)
    if declared is not None and actual != declared:
        if declared == PropertyType.DOUBLE and actual == PropertyType.INT:
            actual = PropertyType.DOUBLE
            value = float(value)  # type: ignore[arg-type]
        else:
            raise InvalidArgument(
                f"property {name!r} is declared {declared}, got {actual} {value!r}"
            )
    if actual in (PropertyType.BOOL, PropertyType.INT):
        number = int(value)  # type: ignore[call-overload]
        if not _INT_MIN <= number <= _INT_MAX:
            raise InvalidArgument(f"property {name!r}: {number} does not fit in 64 bits")
        return actual.value, number, None, None
    if actual == PropertyType.DOUBLE:
        return actual.value, None, float(value), None  # type: ignore[arg-type]
    if actual == PropertyType.STRING:
        check_text(f"property {name!r}", str(value))
        return actual.value, None, None, str(value)
    try:
        return actual.value, None, None, json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"property {name!r} is not JSON-serialisable: {e}") from e


def decode(
    value_type: str, int_value: int | None, double_value: float | None, string_value: str | None
) -> PropertyValue:
    """Decode one stored value. SQLite stores NaN as NULL, so a NULL double reads as NaN."""
    if value_type == PropertyType.DOUBLE:
        return math.nan if double_value is None else float(double_value)
    if value_type == PropertyType.INT:
        return int(int_value or 0)
    if value_type == PropertyType.BOOL:
        return bool(int_value)
    if value_type == PropertyType.STRING:
        return string_value or ""
    loaded: dict[str, Any] | list[Any] = json.loads(string_value or "null")
    return loaded


def encode_all(
    values: Mapping[str, object], declared: Mapping[str, PropertyType] | None, *, type_name: str
) -> dict[str, EncodedValue]:
    """Encode a mapping; with `declared`, every name must be a declared property of the type."""
    encoded: dict[str, EncodedValue] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"property names must be non-empty strings, got {name!r}")
        if declared is not None and name not in declared:
            raise InvalidArgument(
                f"type {type_name!r} declares no property {name!r}; "
                "declare it with put_type or use custom_properties"
            )
        encoded[name] = encode(name, value, declared[name] if declared is not None else None)
    return encoded
