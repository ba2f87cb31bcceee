"""Dataset schemas: inferred from statistics, edited as YAML, and validated against.

Owns `Schema` (per feature: type, numeric or categorical, required, value range,
categorical domain, the missing ratio seen when inferred), its YAML form and
content-hash version, and `validate`, which turns the statistics of a new batch
into anomalies (TFDV's `validate_statistics`): missing or new column, type
change, unseen categorical values above a fraction, out-of-range values, a jump
in the missing ratio.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ratchet.data.stats import DatasetStatistics, FeatureStatistics
from ratchet.errors import InvalidArgument, NotFound

NUMERIC = "numeric"
CATEGORICAL = "categorical"
#: Categorical features with at most this many values get an enumerated domain.
MAX_DOMAIN = 100


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: str
    kind: str
    required: bool = True
    min: float | None = None
    max: float | None = None
    domain: tuple[str, ...] | None = None
    missing_ratio: float = 0.0


@dataclass(frozen=True)
class Schema:
    features: tuple[FeatureSpec, ...]
    label: str | None = None

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise NotFound(f"the schema has no feature {name!r}")

    @property
    def version(self) -> str:
        """Content hash: the same schema always has the same version."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        features = {}
        for spec in self.features:
            entry = {k: v for k, v in asdict(spec).items() if k != "name" and v is not None}
            if spec.domain is not None:
                entry["domain"] = list(spec.domain)
            features[spec.name] = entry
        return {"label": self.label, "features": features}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        if not isinstance(data, dict) or not isinstance(data.get("features"), dict):
            raise InvalidArgument("a schema needs a 'features' mapping")
        specs = []
        for name, entry in data["features"].items():
            try:
                domain = entry.get("domain")
                specs.append(
                    FeatureSpec(
                        name=str(name),
                        **{k: v for k, v in entry.items() if k != "domain"},
                        domain=tuple(str(v) for v in domain) if domain is not None else None,
                    )
                )
            except (TypeError, AttributeError) as e:
                raise InvalidArgument(f"schema feature {name!r} is malformed: {e}") from e
            if specs[-1].kind not in (NUMERIC, CATEGORICAL):
                raise InvalidArgument(
                    f"schema feature {name!r}: kind must be numeric or categorical"
                )
        return cls(tuple(specs), data.get("label"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Schema:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidArgument(f"the schema is not valid YAML: {e}") from e
        return cls.from_dict(data)

    def save(self, path: Path) -> None:
        path.write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Schema:
        if not path.is_file():
            raise NotFound(f"no schema file {path}")
        return cls.from_yaml(path.read_text(encoding="utf-8"))


def infer_schema(stats: DatasetStatistics, *, max_domain: int = MAX_DOMAIN) -> Schema:
    """A schema that the data the statistics describe satisfies."""
    specs = []
    for feature in stats.features:
        if feature.type == "null" or feature.count == 0:
            raise InvalidArgument(
                f"column {feature.name!r} has no values at all; drop it or fill it"
            )
        rows = feature.count + feature.missing
        ratio = feature.missing / rows if rows else 0.0
        if feature.numeric is not None:
            specs.append(
                FeatureSpec(
                    feature.name,
                    feature.type,
                    NUMERIC,
                    required=feature.missing == 0,
                    min=feature.numeric.min,
                    max=feature.numeric.max,
                    missing_ratio=ratio,
                )
            )
        else:
            categorical = feature.categorical
            complete = categorical is not None and categorical.distinct <= min(
                max_domain, len(categorical.top)
            )
            domain = (
                tuple(sorted(v for v, _ in categorical.top)) if complete and categorical else None
            )
            specs.append(
                FeatureSpec(
                    feature.name,
                    feature.type,
                    CATEGORICAL,
                    required=feature.missing == 0,
                    domain=domain,
                    missing_ratio=ratio,
                )
            )
    return Schema(tuple(specs), stats.label)


@dataclass(frozen=True)
class Anomaly:
    feature: str
    kind: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)


def validate(
    stats: DatasetStatistics,
    schema: Schema,
    *,
    unseen_fraction: float = 0.01,
    missing_jump: float = 0.1,
) -> list[Anomaly]:
    """Anomalies of a batch (its statistics) against a schema; empty when it conforms.

    Unseen categorical values are counted from the batch's top values, so with more
    distinct values than the statistics keep, the fraction is a lower bound.
    """
    anomalies: list[Anomaly] = []
    seen = {f.name: f for f in stats.features}
    for spec in schema.features:
        feature = seen.get(spec.name)
        if feature is None:
            anomalies.append(
                Anomaly(spec.name, "missing_column", f"column {spec.name!r} is missing")
            )
            continue
        anomalies.extend(_check_feature(spec, feature, unseen_fraction, missing_jump))
    for name in seen.keys() - {s.name for s in schema.features}:
        anomalies.append(Anomaly(name, "new_column", f"column {name!r} is not in the schema"))
    return anomalies


def _check_feature(
    spec: FeatureSpec, feature: FeatureStatistics, unseen_fraction: float, missing_jump: float
) -> list[Anomaly]:
    found: list[Anomaly] = []
    name = spec.name
    if feature.type != spec.type and not {feature.type, spec.type} <= {"int", "float"}:
        found.append(
            Anomaly(
                name,
                "type_change",
                f"{name!r} is {feature.type}, the schema says {spec.type}",
                {"expected": spec.type, "found": feature.type},
            )
        )
        return found
    rows = feature.count + feature.missing
    ratio = feature.missing / rows if rows else 0.0
    if spec.required and feature.missing:
        found.append(
            Anomaly(
                name,
                "missing_values",
                f"{name!r} is required but has {feature.missing} missing values",
                {"missing": feature.missing},
            )
        )
    elif ratio - spec.missing_ratio > missing_jump:
        found.append(
            Anomaly(
                name,
                "missing_ratio_jump",
                f"{name!r} missing ratio rose from {spec.missing_ratio:.3f} to {ratio:.3f}",
                {"expected": spec.missing_ratio, "found": ratio},
            )
        )
    numeric = feature.numeric
    if numeric is not None and numeric.count:
        low = spec.min is not None and numeric.min is not None and numeric.min < spec.min
        high = spec.max is not None and numeric.max is not None and numeric.max > spec.max
        if low or high:
            found.append(
                Anomaly(
                    name,
                    "out_of_range",
                    f"{name!r} spans [{numeric.min}, "
                    f"{numeric.max}], outside [{spec.min}, {spec.max}]",
                    {"min": numeric.min, "max": numeric.max},
                )
            )
    categorical = feature.categorical
    if spec.domain is not None and categorical is not None and categorical.count:
        allowed = set(spec.domain)
        unseen = {v: c for v, c in categorical.top if v not in allowed}
        share = sum(unseen.values()) / categorical.count
        if share > unseen_fraction:
            examples = sorted(unseen, key=lambda v: (-unseen[v], v))[:5]
            found.append(
                Anomaly(
                    name,
                    "unseen_values",
                    f"{name!r} has {share:.1%} values outside its domain, e.g. {examples}",
                    {"fraction": share, "values": examples},
                )
            )
    return found


def with_domain(schema: Schema, name: str, domain: tuple[str, ...] | None) -> Schema:
    """A copy of the schema with one feature's domain replaced (for programmatic edits)."""
    specs = tuple(replace(s, domain=domain) if s.name == name else s for s in schema.features)
    schema.feature(name)
    return Schema(specs, schema.label)
