"""Comparison rows -> tidy records (full-precision numbers, one row per (metric, arm)) for the CSV files."""

from __future__ import annotations

from typing import Any

from harness.comparison import Comparison


def tidy_record(c: Comparison) -> dict[str, Any]:
    """The numbers of one row unformatted (None where absent); pandas writes them as CSV."""
    return {
        "metric": c.metric, "higher_is_better": c.higher_is_better, "arm": c.arm.label,
        "mean": c.arm.mean, "std": c.arm.std, "n_seeds": c.arm.n_seeds,
        "seeds": ",".join(str(s) for s in c.arm.seeds), "n_examples": c.n,
        "delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
        "delta_seeds": None if c.delta is None else len(c.paired_seeds),
        "per_seed_deltas": ",".join(repr(d) for d in c.per_seed_deltas) or None,
        "seed_ci_low": c.seed_ci[0] if c.seed_ci else None, "seed_ci_high": c.seed_ci[1] if c.seed_ci else None,
        "best": c.best,
    }
