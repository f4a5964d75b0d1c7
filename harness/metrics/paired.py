"""Paired deltas over several training seeds: the statistic behind the multi-seed report tables.

With several seeds, one resample-index matrix over the test examples is shared by every seed (the
test set is the same for all seeds); on each resample every seed's delta (B - A of the same seed)
is recomputed and the deltas are averaged over seeds. The percentile interval and the paired
bootstrap p-value of that seed-averaged delta then follow harness/stats.py, through the same
`paired_result` as `compare`; its details add each seed's own delta and the interval that resamples
seeds too (stats.summarize_seeds, as the likelihood rows get them). With one seed this is `compare`
itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from harness import stats
from harness.errors import HarnessError
from harness.metrics.base import Batch, MetricContext
from harness.metrics.suite import (
    PairedResult, checked_finished, compare, estimates, paired_result, resolve_metrics,
)


class SeedRun(NamedTuple):
    """Both arms of one seed; a plain (predictions_a, predictions_b, references, context) tuple works too."""

    predictions_a: Sequence[str]
    predictions_b: Sequence[str]
    references: Sequence[str]
    context: MetricContext | None
    finished_a: Sequence[bool] | None = None  # per output: ended by itself (limit-share); None: unknown
    finished_b: Sequence[bool] | None = None
    known_a: dict[str, np.ndarray] | None = None  # per-example values scored before (Batch.known)
    known_b: dict[str, np.ndarray] | None = None


def compare_seeds(runs: list[SeedRun], metrics: list[str], *, n_boot: int, seed: int,
                  workers: int = 1) -> dict[str, PairedResult]:
    """B - A per metric: `compare` for one seed, `seed_averaged_compare` for several; `workers`:
    processes for ROUGE and for the resamples of MTLD-like metrics (the same numbers)."""
    if len(runs) == 1:
        run = SeedRun(*runs[0])
        return compare(list(run.predictions_a), list(run.predictions_b), list(run.references), metrics=metrics,
                       context=run.context, n_boot=n_boot, seed=seed, workers=workers,
                       finished_a=run.finished_a, finished_b=run.finished_b, known_a=run.known_a, known_b=run.known_b)
    return seed_averaged_compare(runs, metrics, n_boot=n_boot, seed=seed, workers=workers)


def seed_averaged_compare(runs: list[SeedRun], metrics: list[str], *, n_boot: int, seed: int,
                          workers: int = 1) -> dict[str, PairedResult]:
    """B - A averaged over seeds, with one resample of test examples shared by every seed.

    `runs` holds one SeedRun per seed, all on the same test examples in the same order. With a
    single run this equals `harness.metrics.compare`.
    """
    runs = [SeedRun(*run) for run in runs]
    n = len(runs[0].references)
    if any(len(run.references) != n for run in runs):
        raise HarnessError("seeds were scored on different numbers of test examples",
                           "every seed of a group must generate for the same test split")
    finished = [(checked_finished(r.finished_a, n, "finished_a"), checked_finished(r.finished_b, n, "finished_b"))
                for r in runs]
    chosen = resolve_metrics(metrics, runs[0].context, finished=all(f is not None for pair in finished for f in pair))
    wanted = frozenset(m.name for m in chosen)
    indices = stats.resample_indices(n, n_boot, seed)
    points_a = {m.name: [] for m in chosen}
    points_b = {m.name: [] for m in chosen}
    per_seed = {m.name: [] for m in chosen}  # each seed's delta on every shared resample
    for run, (finished_a, finished_b) in zip(runs, finished):
        batch_a = Batch(list(run.predictions_a), list(run.references), run.context, workers=workers, wanted=wanted,
                        finished=finished_a, known=run.known_a)
        batch_b = Batch(list(run.predictions_b), list(run.references), run.context, workers=workers, wanted=wanted,
                        finished=finished_b, known=run.known_b)
        point_a, reps_a = estimates(chosen, batch_a, indices)
        point_b, reps_b = estimates(chosen, batch_b, indices)
        for m in chosen:
            points_a[m.name].append(point_a[m.name])
            points_b[m.name].append(point_b[m.name])
            per_seed[m.name].append(reps_b[m.name] - reps_a[m.name])
    results = {}
    for m in chosen:
        reps = np.stack(per_seed[m.name])
        result = paired_result(m, float(np.mean(points_a[m.name])), float(np.mean(points_b[m.name])),
                               reps.mean(axis=0), n)
        per_seed_deltas = np.subtract(points_b[m.name], points_a[m.name])
        result.details = {**result.details, **stats.summarize_seeds(per_seed_deltas, reps, result.delta, seed,
                                                                    bias_shift=m.level == "corpus")}
        results[m.name] = result
    return results
