"""Schema inference from statistics, its YAML form and version, and validation anomalies."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ratchet.data.schema import Schema, infer_schema, validate, with_domain
from ratchet.data.stats import DatasetStatistics, compute_statistics
from ratchet.errors import InvalidArgument, NotFound


def stats(columns: dict[str, list[object]], label: str | None = None) -> DatasetStatistics:
    return compute_statistics(pa.table(columns).to_batches(), label=label, threads=1)


BASE = {
    "age": [20, 30, 40, 50],
    "income": [1.0, 2.0, None, 4.0],
    "color": ["red", "blue", "red", "green"],
}


def test_inferred_schema_describes_the_data() -> None:
    schema = infer_schema(stats(BASE, label="age"))
    age, income, color = (schema.feature(n) for n in ("age", "income", "color"))
    assert (age.kind, age.type, age.required, age.min, age.max) == ("numeric", "int", True, 20, 50)
    assert income.required is False and income.missing_ratio == 0.25
    assert color.kind == "categorical" and color.domain == ("blue", "green", "red")
    assert schema.label == "age"
    assert validate(stats(BASE), schema) == []


def test_yaml_round_trip_edits_and_versions(tmp_path: Path) -> None:
    schema = infer_schema(stats(BASE))
    path = tmp_path / "schema.yaml"
    schema.save(path)
    assert Schema.load(path) == schema
    edited = path.read_text().replace("- red", "- red\n    - purple")
    changed = Schema.from_yaml(edited)
    assert "purple" in (changed.feature("color").domain or ())
    assert changed.version != schema.version
    assert Schema.load(path).version == schema.version
    with pytest.raises(InvalidArgument, match="not valid YAML"):
        Schema.from_yaml("features: [unclosed")
    with pytest.raises(InvalidArgument, match="'features'"):
        Schema.from_yaml("label: x")
    with pytest.raises(NotFound):
        Schema.load(tmp_path / "missing.yaml")


def test_every_kind_of_anomaly() -> None:
    schema = infer_schema(stats(BASE))
    batch = stats(
        {
            "age": ["twenty", "thirty"],  # type change
            "color": ["red", "purple"],  # unseen value
            "extra": [1, 2],  # new column
        }
    )
    kinds = {(a.feature, a.kind) for a in validate(batch, schema)}
    assert kinds == {
        ("age", "type_change"),
        ("color", "unseen_values"),
        ("extra", "new_column"),
        ("income", "missing_column"),
    }
    ranges = validate(stats({**BASE, "age": [10, 30, 40, 90]}), schema)
    assert [(a.feature, a.kind) for a in ranges] == [("age", "out_of_range")]
    jump = validate(stats({**BASE, "income": [None, None, None, 4.0]}), schema)
    assert [(a.feature, a.kind) for a in jump] == [("income", "missing_ratio_jump")]
    required = validate(stats({**BASE, "age": [20, None, 40, 50]}), schema)
    assert [(a.feature, a.kind) for a in required] == [("age", "missing_values")]


def test_unseen_values_below_the_fraction_pass() -> None:
    schema = infer_schema(stats(BASE))
    many = ["red"] * 999 + ["purple"]
    batch = stats({"age": [30] * 1000, "income": [2.0] * 1000, "color": many})
    assert validate(batch, schema, unseen_fraction=0.01) == []
    assert validate(batch, schema, unseen_fraction=0.0005)[0].kind == "unseen_values"
    relaxed = with_domain(schema, "color", None)
    assert validate(batch, relaxed, unseen_fraction=0.0) == []


def test_an_all_null_column_is_a_clear_error() -> None:
    with pytest.raises(InvalidArgument, match="'empty' has no values"):
        infer_schema(stats({"a": [1, 2], "empty": [None, None]}))
