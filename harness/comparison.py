"""The comparison record every table prints: one metric of one arm, and its paired difference from the baseline.

bench (two arms, one seed), `score --against` (two files) and `table`/`report` (many arms, mean ±
std over seeds) all build these rows, then hand them to harness/render/, so each number is computed
once (harness.stats, harness.metrics) and written one way (harness.numbers). The paired statistic
itself (delta, interval, p) is harness.metrics.PairedResult, which bench stores as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

BASELINE_LOSS = "ce"  # the loss every arm is compared with unless a table names another baseline


@dataclass(frozen=True)
class ArmValue:
    """One arm's value of a metric: one run's, or the mean ± sample std over its seeds."""

    label: str
    mean: float
    std: float | None = None  # None with a single value
    n_seeds: int = 1  # values averaged (seeds with a finite value)
    seeds: tuple[int, ...] = ()  # every seed the arm ran

    @property
    def measured(self) -> bool:
        """False for an arm none of whose runs measured this (n_seeds 0): "not measured", not zero."""
        return self.n_seeds > 0


@dataclass(frozen=True)
class Comparison:
    """`arm` on `metric`; with a baseline, delta = arm - baseline paired per seed and test example,
    its 95% bootstrap interval and two-sided p (None where not computed, e.g. one number per run)."""

    metric: str
    higher_is_better: bool | None
    arm: ArmValue
    baseline: ArmValue | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n: int | None = None  # test examples
    paired_seeds: tuple[int, ...] = ()  # the seeds the delta averages
    paired_baseline: float | None = None  # the baseline's mean over paired_seeds (delta's other side)
    best: bool = False  # the best arm mean of this metric (see mark_best)
    per_seed_deltas: tuple[float, ...] = ()  # with several paired seeds: each seed's own delta
    seed_ci: tuple[float, float] | None = None  # ...and the hierarchical interval that resamples seeds too


def from_paired(record: Mapping[str, Any], labels: tuple[str, str], seeds: tuple[int, ...] = ()) -> Comparison:
    """Arm B against arm A from one paired result (PairedResult.to_dict(), as bench stores it)."""
    arms = [ArmValue(label, record[key], seeds=seeds) for label, key in zip(labels, ("a", "b"))]
    return Comparison(record["name"], record["higher_is_better"], arms[1], arms[0], delta=record["delta"],
                      ci_low=finite_or_none(record.get("ci_low")), ci_high=finite_or_none(record.get("ci_high")),
                      p_value=finite_or_none(record.get("p_value")), n=record.get("n"), paired_seeds=seeds)


def mark_best(rows: Sequence[Comparison]) -> list[Comparison]:
    """Flag the best arm mean of each metric (ties all flagged); none where no direction is better."""
    by_metric: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_metric.setdefault(row.metric, []).append(i)
    best: set[int] = set()
    for indexes in by_metric.values():
        direction = rows[indexes[0]].higher_is_better
        if direction is None or len(indexes) < 2:
            continue
        indexes = [i for i in indexes if rows[i].arm.measured]
        if len(indexes) < 2:
            continue
        means = np.array([rows[i].arm.mean for i in indexes], dtype=np.float64)
        target = means.max() if direction else means.min()
        best.update(i for i, hit in zip(indexes, np.isclose(means, target, rtol=1e-12, atol=0)) if hit)
    return [replace(row, best=i in best) for i, row in enumerate(rows)]


def finite_or_none(value: float | None) -> float | None:
    """NaN (no interval when n_boot=0) and infinity as None: nothing to show."""
    return None if value is None or not math.isfinite(value) else float(value)
