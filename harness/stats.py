"""Bootstrap confidence intervals, paired bootstrap tests, and across-seed summaries.

Every statistic is written as a function of an example-weight matrix W [k, n] (row r says how many
times each example appears in resample r), so example-level means (W @ x / n) and corpus-level
metrics (pooled n-gram counts W @ counts) are resampled the same vectorised way, and a paired
comparison simply feeds the same W to both arms.

Conventions (also in docs/metrics.md):
- Resamples: `numpy.random.default_rng(seed).integers(0, n, size=(n_boot, n))`, one index matrix
  shared by every metric and both arms, so results are identical for identical inputs and seed.
- Intervals: 95% percentile intervals of the replicates. For corpus-level metrics the interval is
  shifted by the bootstrap bias (estimate - mean of replicates): a resample repeats some examples,
  and repeated examples add tokens but no new n-gram types, so resampled distinct-n and vocabulary
  sizes sit well below the estimate. Means of example-level metrics need no shift.
- p-value: two-sided paired bootstrap test. The replicates of delta = B - A, centred at their mean,
  stand in for the null distribution: p = (1 + #{|delta* - mean(delta*)| >= |delta|}) / (1 + n_boot).
  Identical arms give p = 1; the smallest reachable p is 1 / (1 + n_boot).
- Across seeds: mean, sample standard deviation (ddof=1) and n; a separate question from the
  bootstrap, which measures test-set sampling noise for one trained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from harness.errors import HarnessError

CI_LEVEL = 0.95
Statistic = Callable[[np.ndarray], np.ndarray]  # weights [k, n] -> values [k]


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """The [n_boot, n] matrix of example indices drawn with replacement; fixed by `seed`."""
    if n < 1:
        raise HarnessError("cannot bootstrap an empty set of examples", "pass at least one example")
    if n_boot < 0:
        raise HarnessError(f"n_boot must be >= 0, got {n_boot}", "use e.g. 1000 (0 skips intervals)")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def weight_chunks(indices: np.ndarray, chunk_rows: int = 32) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, W) pairs: W[r, i] = how often example i appears in resample r; chunked to bound memory."""
    n_boot, n = indices.shape
    for start in range(0, n_boot, chunk_rows):
        block = indices[start:start + chunk_rows]
        k = block.shape[0]
        flat = (block + (np.arange(k) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)
        yield slice(start, start + k), counts


def replicates(statistic: Statistic, indices: np.ndarray) -> np.ndarray:
    """The statistic on every resample in `indices`."""
    out = np.empty(indices.shape[0])
    for rows, weights in weight_chunks(indices):
        out[rows] = statistic(weights)
    return out


def point_estimate(statistic: Statistic, n: int) -> float:
    """The statistic on the observed data (every example once)."""
    return float(statistic(np.ones((1, n)))[0])


def percentile_interval(reps: np.ndarray, *, shift: float = 0.0, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of the replicates (plus `shift`); NaNs when there are no replicates."""
    if reps.size == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(reps, [tail, 100.0 - tail])
    return float(low + shift), float(high + shift)


def paired_p_value(delta: float, delta_reps: np.ndarray) -> float:
    """Two-sided paired bootstrap p-value of delta under the null of no difference (see module doc)."""
    if delta_reps.size == 0:
        return math.nan
    centred = np.abs(delta_reps - delta_reps.mean())
    # A tolerance keeps floating-point noise from separating replicates that equal |delta| exactly.
    extreme = int(np.count_nonzero(centred >= abs(delta) - 1e-12 * max(1.0, abs(delta))))
    return (1 + extreme) / (1 + delta_reps.size)


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class PairedInterval:
    a: float
    b: float
    delta: float  # b - a
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def bootstrap(statistic: Statistic, n: int, *, n_boot: int = 1000, seed: int = 0,
              bias_shift: bool = False) -> Interval:
    """Estimate and 95% interval of any weight-matrix statistic (`bias_shift` for corpus metrics)."""
    indices = resample_indices(n, n_boot, seed)
    value = point_estimate(statistic, n)
    reps = replicates(statistic, indices)
    shift = value - float(reps.mean()) if bias_shift and reps.size else 0.0
    return Interval(value, *percentile_interval(reps, shift=shift), n)


def paired_bootstrap(statistic_a: Statistic, statistic_b: Statistic, n: int, *, n_boot: int = 1000,
                     seed: int = 0, bias_shift: bool = False) -> PairedInterval:
    """B - A with a paired bootstrap: both arms are scored on the same resampled examples."""
    indices = resample_indices(n, n_boot, seed)
    a, b = point_estimate(statistic_a, n), point_estimate(statistic_b, n)
    delta_reps = replicates(statistic_b, indices) - replicates(statistic_a, indices)
    return summarize_paired(a, b, delta_reps, n, bias_shift=bias_shift)


def summarize_paired(a: float, b: float, delta_reps: np.ndarray, n: int, *, bias_shift: bool) -> PairedInterval:
    delta = b - a
    shift = delta - float(delta_reps.mean()) if bias_shift and delta_reps.size else 0.0
    low, high = percentile_interval(delta_reps, shift=shift)
    return PairedInterval(a, b, delta, low, high, paired_p_value(delta, delta_reps), n)


def mean_statistic(values: Sequence[float]) -> Statistic:
    """The weighted mean of per-example values, as a weight-matrix statistic."""
    x = np.asarray(values, dtype=np.float64)
    return lambda weights: weights @ x / weights.sum(axis=1)


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> Interval:
    """Mean of per-example values with a seeded percentile bootstrap 95% interval."""
    x = _as_values(values)
    return bootstrap(mean_statistic(x), x.size, n_boot=n_boot, seed=seed)


def paired_bootstrap_mean(values_a: Sequence[float], values_b: Sequence[float], *, n_boot: int = 1000,
                          seed: int = 0) -> PairedInterval:
    """Mean difference B - A of paired per-example values, with interval and paired bootstrap p."""
    a, b = _as_values(values_a), _as_values(values_b)
    if a.size != b.size:
        raise HarnessError(f"paired values differ in length ({a.size} vs {b.size})",
                           "both arms must be scored on the same examples")
    return paired_bootstrap(mean_statistic(a), mean_statistic(b), a.size, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class SeedSummary:
    mean: float
    std: float | None  # sample std (ddof=1); None with a single seed
    n: int


def across_seeds(values: Sequence[float]) -> SeedSummary:
    """Mean ± sample std over training seeds (one value per seed); not a bootstrap interval."""
    x = _as_values(values)
    std = float(x.std(ddof=1)) if x.size > 1 else None
    return SeedSummary(float(x.mean()), std, int(x.size))


def _as_values(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise HarnessError("expected a non-empty 1-D sequence of numbers", "pass one value per example/seed")
    if not np.all(np.isfinite(x)):
        raise HarnessError("values contain NaN or infinity", "drop or fix the non-finite values")
    return x


def format_p_value(p: float) -> str:
    """p for tables: three significant digits, '<0.001' below that (a bootstrap p with 1,000
    resamples bottoms out at 1/1001, which would otherwise print as a falsely precise 0.000999)."""
    return "<0.001" if p < 0.001 else f"{p:.3g}"
