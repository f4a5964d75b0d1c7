"""Paired deltas over several training seeds: the statistic behind the multi-seed report tables.

With several seeds, one resample-index matrix over the test examples is shared by every seed (the
test set is the same for all seeds); on each resample every seed's delta (B - A of the same seed)
is recomputed and the deltas are averaged over seeds. The percentile interval and the paired
bootstrap p-value of that seed-averaged delta then follow harness/stats.py, through the same
`paired_result` as `compare`. With one seed this is `compare` itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness import stats
from harness.errors import HarnessError
from harness.metrics.base import Batch, MetricContext
from harness.metrics.suite import PairedResult, compare, estimates, paired_result, resolve_metrics

# (predictions_a, predictions_b, references, context) of one seed
SeedRun = tuple[Sequence[str], Sequence[str], Sequence[str], MetricContext | None]


def compare_seeds(runs: list[SeedRun], metrics: list[str], *, n_boot: int, seed: int) -> dict[str, PairedResult]:
    """B - A per metric: `compare` for one seed, `seed_averaged_compare` for several."""
    if len(runs) == 1:
        preds_a, preds_b, refs, context = runs[0]
        return compare(list(preds_a), list(preds_b), list(refs), metrics=metrics, context=context,
                       n_boot=n_boot, seed=seed)
    return seed_averaged_compare(runs, metrics, n_boot=n_boot, seed=seed)


def seed_averaged_compare(runs: list[SeedRun], metrics: list[str], *, n_boot: int, seed: int) -> dict[str, PairedResult]:
    """B - A averaged over seeds, with one resample of test examples shared by every seed.

    `runs` holds one SeedRun per seed, all on the same test examples in the same order. With a
    single run this equals `harness.metrics.compare`.
    """
    n = len(runs[0][2])
    if any(len(refs) != n for _, _, refs, _ in runs):
        raise HarnessError("seeds were scored on different numbers of test examples",
                           "every seed of a group must generate for the same test split")
    chosen = resolve_metrics(metrics, runs[0][3])
    wanted = frozenset(m.name for m in chosen)
    indices = stats.resample_indices(n, n_boot, seed)
    points_a = {m.name: [] for m in chosen}
    points_b = {m.name: [] for m in chosen}
    delta_reps = {m.name: np.zeros(indices.shape[0]) for m in chosen}
    for preds_a, preds_b, refs, context in runs:
        point_a, reps_a = estimates(chosen, Batch(list(preds_a), list(refs), context, wanted=wanted), indices)
        point_b, reps_b = estimates(chosen, Batch(list(preds_b), list(refs), context, wanted=wanted), indices)
        for m in chosen:
            points_a[m.name].append(point_a[m.name])
            points_b[m.name].append(point_b[m.name])
            delta_reps[m.name] += reps_b[m.name] - reps_a[m.name]
    return {m.name: paired_result(m, float(np.mean(points_a[m.name])), float(np.mean(points_b[m.name])),
                                  delta_reps[m.name] / len(runs), n)
            for m in chosen}
