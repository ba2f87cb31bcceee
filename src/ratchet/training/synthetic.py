"""Synthetic rows for pre-training, sampled from a dataset's stored statistics.

This module owns `SyntheticGenerator`, which draws raw rows (an Arrow table
with the source's feature columns) from a `DatasetStatistics` alone: each
numeric feature from a monotone cubic inverse CDF through its stored quantiles
and histogram edges (ints rounded), each categorical one from its top-k counts,
and missing values at each feature's missing ratio. Features are independent unless
a correlation matrix is given, in which case they are joined by a Gaussian
copula; `fit_correlation` estimates that matrix from a sample of real rows.
Rows are labelled by any callable (`label_rows`).

What the statistics cannot give back, it does not invent: integer widths
(ints come back int64, floats float64), infinities, and categorical values
beyond the top k. For string features the mass outside the top k goes to one
value, `OTHER`, so frequencies of the top values stay right; for other
categorical types (dates, timestamps), or with `other=None`, it is dropped and
the top values are renormalized. Missing values are drawn independently of the
copula. It does not compute statistics (`ratchet.data.stats`), train on the rows
or record lineage (the pre-training step in `ratchet.training` does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ratchet.data.stats import DatasetStatistics, FeatureStatistics
from ratchet.errors import InvalidArgument

logger = logging.getLogger(__name__)

OTHER = "__other__"
#: A teacher (e.g. a baseline model's predict) or a hand-written rule: both take the raw
#: rows and return one label value per row (an Arrow array, numpy array or list).
Labeller = Callable[[pa.Table], Any]
Floats = np.ndarray[Any, np.dtype[np.float64]]

_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "null": pa.null()}


def _arrow_type(name: str) -> pa.DataType:
    if name in _ARROW_TYPES:
        return _ARROW_TYPES[name]
    try:
        return pa.type_for_alias(name)
    except ValueError:
        # Statistics keep categorical types only by name; one without an alias stays a string.
        return pa.string()


# Numerical Recipes' erfc (relative error < 1.2e-7) and Acklam's inverse normal CDF (relative
# error < 1.2e-9): numpy only, so the generator does not need scipy or torch.
# fmt: off
_ERFC = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
         0.09678418, 0.37409196, 1.00002368, -1.26551223)
_ACKLAM_A = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269,
             -30.66479806614716, 2.506628277459239)
_ACKLAM_B = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
             -13.28068155288572, 1.0)
_ACKLAM_C = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838,
             -2.549732539343734, 4.374664141464968, 2.938163982698783)
_ACKLAM_D = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416,
             1.0)
# fmt: on


def _ndtr(z: Floats) -> Floats:
    """The standard normal CDF."""
    x = np.abs(z) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    half_erfc: Floats = 0.5 * t * np.exp(-x * x + np.polyval(_ERFC, t))
    return np.where(z < 0, half_erfc, 1.0 - half_erfc)


def _ndtri(p: Floats) -> Floats:
    """The inverse standard normal CDF, for p in (0, 1)."""
    q = p - 0.5
    r = q * q
    central = q * np.polyval(_ACKLAM_A, r) / np.polyval(_ACKLAM_B, r)
    s = np.sqrt(-2.0 * np.log(np.minimum(p, 1.0 - p)))
    tail = np.polyval(_ACKLAM_C, s) / np.polyval(_ACKLAM_D, s)
    result: Floats = np.where(np.abs(q) <= 0.5 - 0.02425, central, np.where(q < 0, tail, -tail))
    return result


def _pchip(u: Floats, ps: Floats, xs: Floats) -> Floats:
    """The quantile function through the knots (ps, xs): monotone cubic (Fritsch-Carlson)."""
    # Straight lines between the default 10 quantiles inflate a bell curve's std by 3-4 %;
    # this cubic keeps it under 1 % and, being shape-preserving, stays within [min, max].
    h, dx = np.diff(ps), np.diff(xs)
    slope = np.divide(dx, h, out=np.zeros_like(dx), where=h > 0)
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    inner = slope[:-1] * slope[1:] > 0  # a local extremum or a flat side gets slope 0
    left, right = slope[:-1][inner], slope[1:][inner]
    harmonic = np.zeros_like(w1)
    harmonic[inner] = (w1 + w2)[inner] / (w1[inner] / left + w2[inner] / right)
    m = np.concatenate([slope[:1], harmonic, slope[-1:]])
    i = np.clip(np.searchsorted(ps, u, side="right") - 1, 0, len(ps) - 2)
    t = np.divide(u - ps[i], h[i], out=np.zeros_like(u), where=h[i] > 0)
    t2, t3 = t * t, t * t * t
    result: Floats = (2 * t3 - 3 * t2 + 1) * xs[i] + (3 * t2 - 2 * t3) * xs[i + 1]
    result += h[i] * ((t3 - 2 * t2 + t) * m[i] + (t3 - t2) * m[i + 1])
    return result


@dataclass(frozen=True, eq=False)
class _Marginal:
    """One feature's distribution: an inverse CDF from uniforms to an Arrow column."""

    name: str
    type: str
    missing: float
    xs: Floats  # numeric: knot values, ascending; bool: P(True) as one value
    ps: Floats  # numeric: CDF at each knot; categorical: cumulative probabilities
    categories: pa.Array | None = None

    def draw(self, u: Floats, missing: np.ndarray[Any, np.dtype[np.bool_]]) -> pa.Array:
        arrow_type = _arrow_type(self.type)
        if self.categories is not None:
            codes = np.searchsorted(self.ps, u * self.ps[-1], side="right")
            codes = np.minimum(codes, len(self.categories) - 1)
            return self.categories.take(pa.array(codes, mask=missing))
        if len(self.xs) == 0:
            return pa.nulls(len(u), arrow_type)
        if self.type == "bool":
            # High uniforms give True, as 1 > 0 in the ranks `fit_correlation` took.
            return pa.array(u >= 1.0 - self.xs[0], mask=missing)
        values = _pchip(u, self.ps, self.xs)
        if self.type == "int":
            return pa.array(np.rint(values).astype(np.int64), mask=missing)
        return pa.array(values, mask=missing)


def _numeric_knots(feature: FeatureStatistics) -> tuple[Floats, Floats]:
    numeric = feature.numeric
    if numeric is None or not numeric.quantiles:
        return np.zeros(0), np.zeros(0)
    # Quantiles are CDF points at 0, 1/q, ..., 1 but few; histogram edges add points in the
    # tails, where the extreme quantiles alone leave long empty stretches.
    quantiles = np.asarray(numeric.quantiles, dtype=np.float64)
    counts = np.array([b.count for b in numeric.histogram], dtype=np.float64)
    edges = np.array([b.low for b in numeric.histogram] + [numeric.histogram[-1].high])
    xs = np.concatenate([quantiles, edges])
    ps = np.concatenate([np.linspace(0.0, 1.0, len(quantiles)), np.r_[0.0, np.cumsum(counts)]])
    ps[len(quantiles) :] /= max(counts.sum(), 1.0)
    finite = np.isfinite(xs)
    xs, ps = xs[finite], ps[finite]
    order = np.lexsort((ps, xs))
    # Sketched quantiles and a rounded histogram can disagree slightly: keep the CDF monotone.
    return xs[order], np.maximum.accumulate(ps[order])


def _marginal(feature: FeatureStatistics, other: str | None) -> _Marginal:
    total = feature.count + feature.missing
    missing = feature.missing / total if total else 1.0
    empty = np.zeros(0)
    categorical = feature.categorical
    if categorical is None:
        numeric = feature.numeric
        if feature.type == "bool" and numeric is not None and numeric.mean is not None:
            return _Marginal(feature.name, "bool", missing, np.array([numeric.mean]), empty)
        return _Marginal(feature.name, feature.type, missing, *_numeric_knots(feature))
    values = [value for value, _ in categorical.top]
    counts = [count for _, count in categorical.top]
    rest = categorical.count - sum(counts)
    if not values or sum(counts) == 0:
        return _Marginal(feature.name, feature.type, 1.0, empty, empty)
    arrow_type = _arrow_type(feature.type)
    if rest > 0 and other is not None and arrow_type == pa.string():
        if other in values:
            counts[values.index(other)] += rest
        else:
            values, counts = [*values, other], [*counts, rest]
    categories = pa.array(values, pa.string())
    if arrow_type != pa.string():
        try:
            categories = pc.cast(categories, arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            logger.info("feature %r: values kept as strings, not %s", feature.name, arrow_type)
    cumulative = np.cumsum(np.asarray(counts, dtype=np.float64))
    return _Marginal(feature.name, feature.type, missing, empty, cumulative, categories)


def _normal_scores(values: Floats) -> Floats:
    """Each value's normal score: the mean of a standard normal over its share of the ranks.

    Without ties this is the normal quantile of the rank. A tie group (a category, an int,
    a bool) gets the mean over its whole stretch, so it stands where the copula puts it.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    edges = np.r_[starts, len(values)] / len(values)
    density = np.zeros(len(edges))
    z = _ndtri(edges[1:-1])
    density[1:-1] = np.exp(-z * z / 2.0) / np.sqrt(2.0 * np.pi)
    scores = np.empty(len(values))
    scores[order] = np.repeat(
        (density[:-1] - density[1:]) / np.diff(edges), np.diff(starts, append=len(values))
    )
    return scores


def _features(statistics: DatasetStatistics) -> list[FeatureStatistics]:
    features = [f for f in statistics.features if f.name != statistics.label]
    if not features:
        raise InvalidArgument("the statistics describe no features to generate")
    return features


def _ranked(column: pa.ChunkedArray, feature: FeatureStatistics) -> Floats:
    """The column as floats whose order is the generator's: categories by frequency."""
    if feature.categorical is not None:
        top = pa.array([value for value, _ in feature.categorical.top], pa.string())
        strings = pc.cast(column, pa.string())
        codes = pc.fill_null(pc.index_in(strings, value_set=top), len(top))
        column = pc.if_else(pc.is_null(strings), None, codes)
    values: Floats = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return values


def fit_correlation(table: pa.Table, statistics: DatasetStatistics) -> Floats:
    """The normal-scores rank correlation of the features in `statistics`, from real rows.

    Rows and columns follow the features' order in `statistics` (label excluded),
    as `SyntheticGenerator.features` lists them. Categorical values are ranked by
    their frequency order (top values first, any other value last), the order in
    which the generator draws them. Each pair uses the rows where both are present.
    Ties shrink a correlation (a category spans many ranks), so each entry is divided
    by the std of both features' scores: exact for a categorical against a continuous
    feature under the copula, to first order for two categoricals.
    """
    features = _features(statistics)
    scores = np.full((table.num_rows, len(features)), np.nan)
    for j, feature in enumerate(features):
        if feature.name not in table.column_names:
            raise InvalidArgument(f"column {feature.name!r} of the statistics is not in the table")
        if feature.numeric is None and feature.categorical is None:
            continue
        try:
            values = _ranked(table.column(feature.name), feature)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise InvalidArgument(f"column {feature.name!r}: {str(e).splitlines()[0]}") from e
        present = ~np.isnan(values)
        if present.any():
            scores[present, j] = _normal_scores(values[present])
    # Pairwise-complete Pearson correlation of the scores, all pairs at once.
    mask = (~np.isnan(scores)).astype(np.float64)
    z = np.nan_to_num(scores)
    n = mask.T @ mask
    sums = z.T @ mask  # [i, j]: sum of feature i over rows where j is present
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = z.T @ z - sums * sums.T / n
        var = (z * z).T @ mask - sums * sums / n
        corr = cov / np.sqrt(var * var.T)
        spread = np.sqrt((z * z).sum(axis=0, keepdims=True) / mask.sum(axis=0, keepdims=True))
        corr /= spread * spread.T
    result: Floats = np.nan_to_num(np.clip((corr + corr.T) / 2.0, -1.0, 1.0))
    np.fill_diagonal(result, 1.0)
    return result


def _cholesky(correlation: npt.ArrayLike, d: int) -> Floats:
    try:
        matrix = np.asarray(correlation, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"the correlation is not a matrix of numbers: {e}") from e
    if matrix.shape != (d, d):
        raise InvalidArgument(f"the correlation must be {d} x {d}, got shape {matrix.shape}")
    finite = np.isfinite(matrix).all() and np.allclose(matrix, matrix.T, atol=1e-8)
    if not finite or not np.allclose(np.diag(matrix), 1.0, atol=1e-8):
        raise InvalidArgument("the correlation must be finite, symmetric, with a unit diagonal")
    try:
        return np.linalg.cholesky(matrix).astype(np.float64)
    except np.linalg.LinAlgError:
        # An estimated or hand-written matrix can miss positive definiteness by a little:
        # clip its eigenvalues and rescale to a unit diagonal, the nearest usable correlation.
        logger.info("the correlation is not positive definite; its eigenvalues are clipped")
        eigenvalues, vectors = np.linalg.eigh(matrix)
        fixed = (vectors * np.maximum(eigenvalues, 1e-6)) @ vectors.T
        scale = 1.0 / np.sqrt(np.diag(fixed))
        return np.linalg.cholesky(fixed * np.outer(scale, scale)).astype(np.float64)


def teacher_labeller(
    predict: Callable[[pa.Table], Any], classes: tuple[Any, ...] | None, *, seed: int = 0
) -> Labeller:
    """A teacher model's `predict_table` as a labeller.

    A classifier's label is drawn from its predicted class probabilities, not taken
    as their argmax: on an imbalanced label the argmax is nearly always the majority
    class, which would teach the student to predict only that, while the draws carry
    the teacher's ranking. `classes` is None for regression (the prediction is the label).
    """
    rng = np.random.default_rng(seed)

    def label(rows: pa.Table) -> Any:
        predicted = np.asarray(predict(rows), dtype=np.float64)
        if classes is None:
            return predicted
        cumulative = np.cumsum(predicted, axis=1)
        drawn = (rng.random(len(predicted))[:, None] * cumulative[:, -1:] > cumulative).sum(axis=1)
        return np.asarray(classes)[np.minimum(drawn, len(classes) - 1)]

    return label


def label_rows(
    table: pa.Table, labeller: Labeller, *, name: str, label_type: str | None = None
) -> pa.Table:
    """`table` with a column `name` appended: the labeller's value for each row.

    `labeller` is a teacher (e.g. a baseline model's predict) or a hand-written
    rule; both are the same shape, a callable from the raw rows to one value per
    row. With `label_type` (a statistics type name) the values are cast to it, safely.
    """
    values = labeller(table)
    labels = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if len(labels) != table.num_rows:
        raise InvalidArgument(
            f"the labeller returned {len(labels)} labels for {table.num_rows} rows"
        )
    target = None if label_type in (None, "null") else _arrow_type(label_type)
    if target is not None and labels.type != target:
        try:
            labels = pc.cast(labels, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            first = str(e).splitlines()[0]
            raise InvalidArgument(f"label {name!r} must be {label_type}: {first}") from e
    return table.append_column(name, labels)


@dataclass(frozen=True, eq=False)
class SyntheticGenerator:
    """Draws raw rows from per-feature marginals, independent or joined by a Gaussian copula."""

    marginals: tuple[_Marginal, ...]
    cholesky: Floats | None = None
    labeller: Labeller | None = None
    label: FeatureStatistics | None = None

    @classmethod
    def from_statistics(
        cls,
        statistics: DatasetStatistics,
        *,
        correlation: npt.ArrayLike | None = None,
        labeller: Labeller | None = None,
        other: str | None = OTHER,
    ) -> SyntheticGenerator:
        """A generator for `statistics`' features; `correlation` from `fit_correlation`."""
        features = _features(statistics)
        marginals = tuple(_marginal(f, other) for f in features)
        cholesky = None if correlation is None else _cholesky(correlation, len(features))
        label = None
        if labeller is not None:
            if statistics.label is None:
                raise InvalidArgument("a labeller needs statistics with a label column")
            label = statistics.feature(statistics.label)
        return cls(marginals, cholesky, labeller, label)

    @property
    def features(self) -> tuple[str, ...]:
        """The generated feature columns, in the order of the correlation's rows."""
        return tuple(m.name for m in self.marginals)

    def sample(self, n: int, *, seed: int) -> pa.Table:
        """`n` rows, the same for the same seed; labelled when the generator has a labeller."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgument(f"n must be a positive integer, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgument(f"seed must be an integer, got {seed!r}")
        rng = np.random.default_rng(seed)
        d = len(self.marginals)
        if self.cholesky is None:
            u = rng.random((n, d))
        else:
            u = _ndtr(rng.standard_normal((n, d)) @ self.cholesky.T)
        missing = rng.random((n, d)) < np.array([m.missing for m in self.marginals])
        columns = [m.draw(u[:, j], missing[:, j]) for j, m in enumerate(self.marginals)]
        table = pa.table(columns, names=list(self.features))
        if self.labeller is None or self.label is None:
            return table
        return label_rows(table, self.labeller, name=self.label.name, label_type=self.label.type)
