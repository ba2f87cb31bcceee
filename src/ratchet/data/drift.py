"""Drift and skew between two sets of dataset statistics, with TFDV's definitions.

Owns the distances: L-infinity between categorical value distributions,
Jensen-Shannon divergence (base 2, so in [0, 1]) between numeric histograms
rebucketed onto common boundaries, and the population stability index (PSI)
for both; per-feature thresholds; and the `DriftReport`. It reads only
`DatasetStatistics`; recording a report in the metadata store is the caller's job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ratchet.data.stats import Bucket, CategoricalStats, DatasetStatistics, NumericStats
from ratchet.errors import InvalidArgument

L_INFINITY = "l_infinity"
JENSEN_SHANNON = "jensen_shannon"
MISSING = "missing"
#: Defaults: TFDV leaves thresholds to the user; these flag a tenth of the mass moving.
DEFAULT_THRESHOLDS = {L_INFINITY: 0.1, JENSEN_SHANNON: 0.1}
_EPSILON = 1e-6


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    metric: str
    distance: float
    threshold: float
    drifted: bool
    psi: float


@dataclass(frozen=True)
class DriftReport:
    """Per-feature distances; `drifted` when any feature is past its threshold."""

    drifted: bool
    features: tuple[FeatureDrift, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "features": [asdict(f) for f in self.features]}


def compare(
    baseline: DatasetStatistics,
    current: DatasetStatistics,
    *,
    thresholds: Mapping[str, float] | None = None,
    metric_thresholds: Mapping[str, float] | None = None,
) -> DriftReport:
    """Compare every feature of `current` with `baseline`.

    `thresholds` sets a threshold per feature name; `metric_thresholds` per metric
    (defaults in DEFAULT_THRESHOLDS). A feature present in only one set is reported
    with metric "missing" and counts as drifted.
    """
    per_metric = {**DEFAULT_THRESHOLDS, **(metric_thresholds or {})}
    per_feature = dict(thresholds or {})
    for name, value in [*per_metric.items(), *per_feature.items()]:
        if not isinstance(value, int | float) or value < 0:
            raise InvalidArgument(f"drift threshold for {name!r} must be a number >= 0")
    names = [f.name for f in baseline.features]
    names += [f.name for f in current.features if f.name not in names]
    results = []
    for name in names:
        old = next((f for f in baseline.features if f.name == name), None)
        new = next((f for f in current.features if f.name == name), None)
        if old is None or new is None:
            results.append(FeatureDrift(name, MISSING, 1.0, 0.0, True, math.inf))
            continue
        if old.numeric is not None and new.numeric is not None:
            metric = JENSEN_SHANNON
            p, q = _common_histograms(old.numeric, new.numeric)
            distance = jensen_shannon(p, q)
        elif old.categorical is not None and new.categorical is not None:
            metric = L_INFINITY
            p, q = _value_distributions(old.categorical, new.categorical)
            distance = float(np.max(np.abs(p - q))) if len(p) else 0.0
        else:
            if old.type != new.type:
                results.append(FeatureDrift(name, MISSING, 1.0, 0.0, True, math.inf))
            continue  # a column with no values on either side has nothing to compare
        threshold = float(per_feature.get(name, per_metric[metric]))
        results.append(
            FeatureDrift(name, metric, distance, threshold, distance > threshold, psi(p, q))
        )
    return DriftReport(any(r.drifted for r in results), tuple(results))


def jensen_shannon(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """Jensen-Shannon divergence in bits between two distributions on the same support."""
    m = (p + q) / 2

    def kl(a: npt.NDArray[np.float64]) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def psi(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """Population stability index, with empty cells smoothed by a small epsilon."""
    if len(p) == 0:
        return 0.0
    a = np.clip(p, _EPSILON, None)
    b = np.clip(q, _EPSILON, None)
    return float(np.sum((b - a) * np.log(b / a)))


def _value_distributions(
    old: CategoricalStats, new: CategoricalStats
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Both value distributions over the union of their top values, plus an 'other' cell."""
    values = sorted({v for v, _ in old.top} | {v for v, _ in new.top})

    def shares(stats: CategoricalStats) -> npt.NDArray[np.float64]:
        counts = dict(stats.top)
        total = max(stats.count, 1)
        named = np.array([counts.get(v, 0) for v in values], dtype=np.float64) / total
        return np.append(named, max(0.0, 1.0 - float(named.sum())))

    return shares(old), shares(new)


def _common_histograms(
    old: NumericStats, new: NumericStats
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Both histograms' masses on the union of their bucket edges, mass spread evenly."""
    edges = sorted(
        {b.low for b in old.histogram + new.histogram}
        | {b.high for b in old.histogram + new.histogram}
    )
    if len(edges) < 2:
        return np.array([1.0]), np.array([1.0])

    def masses(histogram: tuple[Bucket, ...]) -> npt.NDArray[np.float64]:
        result = np.zeros(len(edges) - 1)
        total = sum(b.count for b in histogram) or 1
        for bucket in histogram:
            width = bucket.high - bucket.low
            for i in range(len(edges) - 1):
                low, high = edges[i], edges[i + 1]
                if width <= 0:  # a constant column: all its mass at one point
                    inside = low <= bucket.low <= high and (
                        bucket.low < high or i == len(edges) - 2
                    )
                    result[i] += bucket.count if inside else 0
                    if inside:
                        break
                    continue
                overlap = max(0.0, min(high, bucket.high) - max(low, bucket.low))
                result[i] += bucket.count * overlap / width
        return result / total

    return masses(old.histogram), masses(new.histogram)
