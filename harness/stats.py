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
  A metric's interval is then clipped to the metric's range; an interval of a difference is not.
  A bound or a delta within floating-point rounding of 0 (ROUNDING) is 0: a difference of two
  seed-averaged means whose seeds cancel can come out as +-1e-17, which would otherwise print as a
  number and, as a bound, read as excluding 0.
- p-value: two-sided paired bootstrap test. The replicates of delta = B - A, centred at their mean,
  stand in for the null distribution: p = (1 + #{|delta* - mean(delta*)| >= |delta|}) / (1 + n_boot).
  Identical arms give p = 1; the smallest reachable p is 1 / (1 + n_boot).
- Undefined replicates: a metric may be undefined on some resamples (NaN: a rarefied distinct-n
  whose resample has fewer n-grams than the budget, MATTR with fewer words than its window).
  `interval` and `paired_p_value` use the finite replicates only, and give NaN when fewer than
  MIN_FINITE_SHARE (95%) of them are finite: an interval of the few resamples where the metric
  happens to be defined would describe a different population. A NaN estimate gives NaN too.
- Across seeds: mean, sample standard deviation (ddof=1) and n; a separate question from the
  bootstrap, which measures test-set sampling noise for one trained model. A delta averaged over
  several seeds also gets a hierarchical interval (`hierarchical_replicates`: seeds resampled on top of
  the shared resample of test examples), which covers both sources of noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from harness.errors import HarnessError

CI_LEVEL = 0.95
MIN_FINITE_SHARE = 0.95  # below this share of finite replicates, no interval or p-value (module doc)
# Relative size under which a difference is floating-point noise: a seed-averaged delta whose seeds
# cancel exactly can come out as 1.7e-18, which must neither print as a bound nor exclude 0.
ROUNDING = 1e-12
Statistic = Callable[[np.ndarray], np.ndarray]  # weights [k, n] -> values [k]
K = TypeVar("K")


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


def replicates(statistics: Mapping[K, Statistic], indices: np.ndarray) -> dict[K, np.ndarray]:
    """Each statistic on every resample in `indices`; one weight matrix per chunk serves them all."""
    out = {key: np.empty(indices.shape[0]) for key in statistics}
    for rows, weights in weight_chunks(indices):
        for key, statistic in statistics.items():
            out[key][rows] = statistic(weights)
    return out


def finite_replicates(reps: np.ndarray) -> np.ndarray | None:
    """The finite replicates, or None when there are none or too few to trust (module doc)."""
    finite = reps[np.isfinite(reps)]
    if finite.size == 0 or finite.size < MIN_FINITE_SHARE * reps.size:
        return None
    return finite


def interval(reps: np.ndarray, point: float, *, bias_shift: bool = False,
             bounds: tuple[float, float] = (-math.inf, math.inf), level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of the replicates of `point`; NaNs when there are no replicates, too few
    finite ones, or no finite `point`.

    `bias_shift` (corpus metrics) moves it by point - mean(reps), see the module doc; `bounds`
    clips it to the metric's range (a shifted interval can otherwise leave it, e.g. distinct-n > 1).
    """
    reps = finite_replicates(reps)
    if reps is None or not math.isfinite(point):
        return math.nan, math.nan
    shift = point - float(reps.mean()) if bias_shift else 0.0
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(reps, [tail, 100.0 - tail])
    low, high = np.clip([float(low + shift), float(high + shift)], *bounds)
    scale = max(1.0, float(np.abs(reps).max()))
    return without_rounding_noise(float(low), scale), without_rounding_noise(float(high), scale)


def without_rounding_noise(value: float, scale: float) -> float:
    """0.0 for a value within floating-point rounding (ROUNDING, relative to `scale`) of 0, else the value."""
    return 0.0 if abs(value) <= ROUNDING * scale else value


def hierarchical_replicates(per_seed: np.ndarray, seed: int) -> np.ndarray:
    """Replicates of a seed-averaged delta that resample training seeds too. Row r draws S seeds
    with replacement and averages their deltas on resample r of the test examples (`per_seed`
    [S, n_boot]: each seed's delta on every shared resample). Every seed is scored on the same test
    examples, so one example resample serves all drawn seeds, as it does in the example-level
    interval: seeds that agree give that interval back, and seeds that disagree widen it. With
    three seeds the seed draw has only ten distinct outcomes; read it with the per-seed deltas."""
    n_seeds, n_boot = per_seed.shape
    if n_boot == 0:
        return np.empty(0)
    rng = np.random.default_rng([seed, n_seeds, 1])  # a stream of its own, apart from the example resamples
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    return per_seed[seeds, np.arange(n_boot)[:, None]].mean(axis=1)


def summarize_seeds(per_seed_deltas: Sequence[float], per_seed_reps: np.ndarray, delta: float, seed: int, *,
                    bias_shift: bool) -> dict[str, object]:
    """What a reviewer asks of a delta averaged over several seeds, beside summarize_paired's
    example-level interval: each seed's own delta (`per_seed_deltas`) and the interval that also
    resamples seeds (`hierarchical_ci`, None when undefined). `per_seed_reps` [S, n_boot]: each
    seed's delta on every shared resample of test examples; the keys go into a PairedResult's details."""
    low, high = interval(hierarchical_replicates(per_seed_reps, seed), delta, bias_shift=bias_shift)
    return {"per_seed_deltas": [float(d) for d in per_seed_deltas],
            "hierarchical_ci": [low, high] if math.isfinite(low) and math.isfinite(high) else None}


def paired_p_value(delta: float, delta_reps: np.ndarray) -> float:
    """Two-sided paired bootstrap p-value of delta under the null of no difference (see module doc);
    NaN without a finite delta or with too few finite replicates."""
    delta_reps = finite_replicates(delta_reps)
    if delta_reps is None or not math.isfinite(delta):
        return math.nan
    centred = np.abs(delta_reps - delta_reps.mean())
    # A tolerance keeps floating-point noise from separating replicates that equal |delta| exactly.
    extreme = int(np.count_nonzero(centred >= abs(delta) - ROUNDING * max(1.0, abs(delta))))
    return (1 + extreme) / (1 + delta_reps.size)


def summarize_paired(a: float, b: float, delta_reps: np.ndarray, *, bias_shift: bool) -> dict[str, float]:
    """delta = b - a with its interval and p-value, from the paired replicates of delta.

    Returns the keys delta, ci_low, ci_high, p_value (the fields of harness.metrics.PairedResult).
    A delta has no fixed range, so its interval is never clipped.
    """
    delta = without_rounding_noise(b - a, max(1.0, abs(a), abs(b)))
    low, high = interval(delta_reps, delta, bias_shift=bias_shift)
    return {"delta": delta, "ci_low": low, "ci_high": high, "p_value": paired_p_value(delta, delta_reps)}


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
