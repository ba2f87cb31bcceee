"""Feature transforms: fitted from training statistics, applied the same way everywhere.

Owns `Transform` — per feature an operation (z-score, min-max, log, bucketize,
vocabulary with out-of-vocabulary buckets, hashing) and the feature group a model
needs (numeric, one-hot for small vocabularies, embedding above a threshold with
a dimension rule) — its JSON form and version, and its application to a record
batch or a single raw record (serving). Fitting reads only `DatasetStatistics`
of the training split, so nothing about validation or test leaks in.

Missing values: numbers take the training mean (0 after z-score), categories go
to an out-of-vocabulary bucket.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.data.split import column_hash
from ratchet.data.stats import DatasetStatistics, FeatureStatistics
from ratchet.errors import InvalidArgument, NotFound

NUMERIC_OPS = ("zscore", "minmax", "log", "bucketize", "passthrough")
CATEGORICAL_OPS = ("vocabulary", "hash")
NUMERIC, ONE_HOT, EMBEDDING = "numeric", "one_hot", "embedding"


def embedding_dim(cardinality: int) -> int:
    """fast.ai's rule of thumb: 1.6 * n^0.56, capped at 50."""
    return int(min(50, max(2, round(1.6 * cardinality**0.56))))


@dataclass(frozen=True)
class FeatureTransform:
    name: str
    op: str
    params: Mapping[str, Any] = field(default_factory=dict)
    group: str = NUMERIC
    width: int = 1  # one-hot width or embedding vocabulary size (ids are 0..width-1)
    embedding_dim: int | None = None


@dataclass(frozen=True)
class Transform:
    features: tuple[FeatureTransform, ...]
    label: str | None = None

    def feature(self, name: str) -> FeatureTransform:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise NotFound(f"the transform has no feature {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transform:
        try:
            features = tuple(FeatureTransform(**f) for f in data["features"])
        except (KeyError, TypeError) as e:
            raise InvalidArgument(f"not a serialized transform: {e}") from e
        return cls(features, data.get("label"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Transform:
        return cls.from_dict(json.loads(text))

    @property
    def version(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        """What a model needs to know: numeric inputs, one-hot and embedding inputs."""
        grouped: dict[str, list[dict[str, Any]]] = {NUMERIC: [], ONE_HOT: [], EMBEDDING: []}
        for f in self.features:
            grouped[f.group].append({"name": f.name, "width": f.width, "dim": f.embedding_dim})
        return grouped

    def apply(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        """Transformed features (float32 numbers, int32 category ids) plus the label as is."""
        columns: dict[str, pa.Array] = {}
        for spec in self.features:
            if spec.name not in batch.schema.names:
                raise NotFound(f"column {spec.name!r} is missing from the data to transform")
            columns[spec.name] = _apply_one(spec, _column(batch, spec.name))
        if self.label is not None and self.label in batch.schema.names:
            columns[self.label] = _column(batch, self.label)
        return pa.table(columns)

    def apply_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """One raw record (e.g. a serving request) to its features."""
        missing = [f.name for f in self.features if f.name not in record]
        if missing:
            raise InvalidArgument(f"record is missing field {missing[0]!r}")
        row = {f.name: [record[f.name]] for f in self.features}
        try:
            table = pa.table(row)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidArgument(f"record does not fit the transform: {e}") from e
        return {name: values[0] for name, values in self.apply(table).to_pydict().items()}


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    column = batch.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _apply_one(spec: FeatureTransform, column: pa.Array) -> pa.Array:
    p = spec.params
    if spec.op in CATEGORICAL_OPS:
        if spec.op == "hash":
            ids = column_hash(column) % np.uint64(p["buckets"])
            return pa.array(ids.astype(np.int32))
        vocabulary = pa.array(p["vocabulary"], pa.string())
        found = pc.index_in(column.cast(pa.string()), value_set=vocabulary)
        unknown = found.is_null().to_numpy(zero_copy_only=False)
        ids = pc.fill_null(found, len(p["vocabulary"])).to_numpy(zero_copy_only=False)
        ids = ids.astype(np.int64)
        if p["oov_buckets"] > 1 and unknown.any():
            # Only unknown values are hashed, into one of the out-of-vocabulary buckets.
            spread = column_hash(column.filter(pa.array(unknown))) % np.uint64(p["oov_buckets"])
            ids[unknown] += spread.astype(np.int64)
        return pa.array(ids.astype(np.int32))
    try:
        values = column.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InvalidArgument(f"column {spec.name!r} is not numeric: {e}") from e
    x = pc.fill_null(values, float(p.get("fill", 0.0))).to_numpy(zero_copy_only=False)
    x = np.where(np.isnan(x), float(p.get("fill", 0.0)), x)
    if spec.op == "zscore":
        out = (x - p["mean"]) / (p["std"] or 1.0)
    elif spec.op == "minmax":
        span = (p["max"] - p["min"]) or 1.0
        out = (x - p["min"]) / span
    elif spec.op == "log":
        out = np.log1p(np.maximum(x - p["shift"], 0.0))
    elif spec.op == "bucketize":
        out = np.searchsorted(np.asarray(p["boundaries"]), x, side="right").astype(np.float64)
    else:
        out = x
    return pa.array(out.astype(np.float32))


def fit_transform(
    stats: DatasetStatistics,
    *,
    numeric: str = "zscore",
    overrides: Mapping[str, str] | None = None,
    embedding_threshold: int = 50,
    oov_buckets: int = 1,
    hash_buckets: int = 1000,
    min_frequency: int = 1,
) -> Transform:
    """Fit every feature but the label from the training split's statistics.

    `overrides` picks an operation per feature (any of NUMERIC_OPS or CATEGORICAL_OPS).
    A vocabulary is the feature's top values seen at least `min_frequency` times, so it
    is as large as the statistics' `top_k`; larger than `embedding_threshold` ids make
    an embedding, smaller a one-hot input.
    """
    if oov_buckets < 1 or hash_buckets < 1:
        raise InvalidArgument("oov_buckets and hash_buckets must be at least 1")
    chosen = dict(overrides or {})
    unknown = set(chosen) - {f.name for f in stats.features}
    if unknown:
        raise NotFound(f"override for unknown feature {sorted(unknown)[0]!r}")
    specs = []
    for feature in stats.features:
        if feature.name == stats.label:
            continue
        op = chosen.get(feature.name, numeric if feature.numeric is not None else "vocabulary")
        specs.append(
            _fit_one(feature, op, embedding_threshold, oov_buckets, hash_buckets, min_frequency)
        )
    if not specs:
        raise InvalidArgument("no features to transform besides the label")
    return Transform(tuple(specs), stats.label)


def _fit_one(
    feature: FeatureStatistics,
    op: str,
    embedding_threshold: int,
    oov_buckets: int,
    hash_buckets: int,
    min_frequency: int,
) -> FeatureTransform:
    name = feature.name
    if op in NUMERIC_OPS:
        numbers = feature.numeric
        if numbers is None or numbers.count == 0 or numbers.mean is None:
            raise InvalidArgument(f"feature {name!r} has no numeric values to fit {op!r}")
        params: dict[str, Any] = {"fill": numbers.mean}
        if op == "zscore":
            params.update(mean=numbers.mean, std=numbers.std or 1.0)
        elif op == "minmax":
            params.update(min=numbers.min, max=numbers.max)
        elif op == "log":
            params.update(shift=min(0.0, numbers.min or 0.0))
        elif op == "bucketize":
            params["boundaries"] = sorted(set(numbers.quantiles[1:-1]))
        return FeatureTransform(name, op, params)
    if op not in CATEGORICAL_OPS:
        raise InvalidArgument(f"unknown transform {op!r} for {name!r}")
    if op == "hash":
        width = hash_buckets
        params = {"buckets": hash_buckets}
    else:
        top = feature.categorical.top if feature.categorical is not None else ()
        vocabulary = [value for value, count in top if count >= min_frequency]
        width = len(vocabulary) + oov_buckets
        params = {"vocabulary": vocabulary, "oov_buckets": oov_buckets}
    if width > embedding_threshold:
        return FeatureTransform(name, op, params, EMBEDDING, width, embedding_dim(width))
    return FeatureTransform(name, op, params, ONE_HOT, width)
