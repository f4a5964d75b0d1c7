"""The paired delta of every arm of a group against the CE arm of the same seeds, read from the results tree.

This module only gathers inputs (each point's generations.jsonl, the baseline's train_counts.npz,
the model's tokenizer for rare-token metrics), checks that the arms are paired, and says in a
footnote why a delta is missing; the statistic is harness.metrics.paired.compare_seeds. No model
is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.report.collect import Group
from harness.metrics.likelihood import LIKELIHOOD_ROWS
from harness.results import NOT_MEASURED, decoding_metric, finished_flags, read_example_scores, split_decoding

TokenizerLoader = Callable[[str], Any]
Arm = tuple[str, str]
ArmDeltas = tuple[dict[str, Any], list[int]]  # ({metric: PairedResult}, the seeds paired)
# ({row name: PairedResult}, {row name: the seeds its delta averages}): rows of one arm may pair
# different seeds (a further decoding or the likelihood only where the points measured them)
RowDeltas = tuple[dict[str, Any], dict[str, list[int]]]


def default_tokenizer_loader(model: str, trust_remote_code: bool = False):
    from harness.models import load_tokenizer

    return load_tokenizer(model, trust_remote_code=trust_remote_code)


def group_deltas(group: Group, names: list[str], *, n_boot: int, bootstrap_seed: int, trust_remote_code: bool = False,
                 tokenizer_loader: TokenizerLoader | None = None,
                 baseline: Arm | None = None, workers: int = 1) -> tuple[dict[Arm, RowDeltas], list[str]]:
    """{arm: (paired results by row, seeds by row)} for every arm but the baseline (the group's CE
    arm unless another is named: the ablation reads its rungs against its two ends), and the
    footnotes."""
    loader = tokenizer_loader or partial(default_tokenizer_loader, trust_remote_code=trust_remote_code)
    notes: list[str] = []

    @cache
    def tokenizer() -> tuple[Callable | None, str | None]:
        """The model's tokenizer as str -> ids, or None and the reason (loaded at most once per group)."""
        try:
            from harness.metrics import token_ids_fn

            return token_ids_fn(loader(group.model)), None
        except (HarnessError, OSError, ValueError, ImportError) as err:
            return None, str(err).splitlines()[0]

    @cache
    def generations(path: Path, decoding: str | None = None) -> list[dict]:
        return next(p for p in group.points if p.path == path).generations(decoding)

    labels, baseline = group.labels(), baseline or group.baseline()
    by_decoding: dict[str | None, list[str]] = {}
    for name in names:
        if name not in LIKELIHOOD_ROWS:
            decoding, metric = split_decoding(name)
            by_decoding.setdefault(decoding, []).append(metric)
    likelihood = [name for name in names if name in LIKELIHOOD_ROWS]
    deltas = {}
    for arm in group.arms():
        if arm == baseline:
            continue
        results, paired_seeds = _arm_deltas(group, arm, baseline, by_decoding.get(None, []), labels, notes,
                                            tokenizer, generations, n_boot=n_boot, bootstrap_seed=bootstrap_seed,
                                            workers=workers)
        seeds = {name: paired_seeds for name in results}
        for decoding, metrics in by_decoding.items():
            if decoding is not None:
                found, decoded_seeds = _arm_deltas(group, arm, baseline, metrics, labels, notes, tokenizer,
                                                   partial(generations, decoding=decoding), n_boot=n_boot,
                                                   bootstrap_seed=bootstrap_seed, decoding=decoding, workers=workers)
                for metric, result in found.items():
                    results[decoding_metric(decoding, metric)] = result
                    seeds[decoding_metric(decoding, metric)] = decoded_seeds
        if likelihood:
            found, likelihood_seeds = _likelihood_deltas(group, arm, baseline, likelihood, n_boot=n_boot,
                                                         bootstrap_seed=bootstrap_seed)
            results.update(found)
            seeds.update({name: likelihood_seeds for name in found})
        deltas[arm] = (results, seeds)
    return deltas, notes


def _measured_seeds(group: Group, arm: Arm, baseline: Arm, measured: Callable[[dict], bool]) -> list[int]:
    """The paired seeds whose arm and baseline points both measured a further row (`measured` reads
    a metrics.json record): a point written before result format 3 has none of them."""
    arm_points, base_points = group.points_of(arm), group.points_of(baseline)
    return [s for s in sorted(set(arm_points) & set(base_points))
            if measured(arm_points[s].metrics) and measured(base_points[s].metrics)
            and not seed_pairing_problems(base_points[s], arm_points[s])]


def likelihood_runs(group: Group, arm: Arm, baseline: Arm) -> tuple[list[tuple], list[int]]:
    """(baseline, arm) BucketSums per paired seed that measured the likelihood, from each point's
    token_scores.npz bucketed by the baseline's training counts (which paired arms share), and
    those seeds."""
    from harness.metrics.likelihood import point_bucket_sums

    arm_points, base_points = group.points_of(arm), group.points_of(baseline)
    runs, seeds = [], []
    for seed in _measured_seeds(group, arm, baseline, lambda record: record.get("token_likelihood") is not None):
        counts = base_points[seed].train_counts()
        scores = [p.token_scores() for p in (base_points[seed], arm_points[seed])]
        if counts is None or any(s is None for s in scores):
            continue
        n_examples = base_points[seed].metrics["n_test"]
        n_buckets = base_points[seed].metrics["token_likelihood"]["n_buckets"]
        runs.append(tuple(point_bucket_sums(s, counts, n_examples, n_buckets) for s in scores))
        seeds.append(seed)
    return runs, seeds


def _likelihood_deltas(group: Group, arm: Arm, baseline: Arm, names: list[str], *, n_boot: int,
                       bootstrap_seed: int) -> ArmDeltas:
    """Paired deltas of the likelihood rows, averaged over the seeds that measured them, and those seeds."""
    from harness.metrics.likelihood import compare_likelihood

    runs, seeds = likelihood_runs(group, arm, baseline)
    return (compare_likelihood(runs, names, n_boot=n_boot, seed=bootstrap_seed), seeds) if runs else ({}, [])


def _arm_deltas(group: Group, arm: Arm, baseline: Arm, names: list[str], labels: dict[Arm, str], notes: list[str],
                tokenizer, generations, *, n_boot: int, bootstrap_seed: int, decoding: str | None = None,
                workers: int = 1) -> ArmDeltas:
    """decoding: a further decoding's metrics, over the seeds whose points have that decoding."""
    from harness.metrics import METRICS, MetricContext
    from harness.metrics.paired import SeedRun, compare_seeds

    label, base_label = labels[arm], labels[baseline]
    arm_points, base_points = group.points_of(arm), group.points_of(baseline)
    if decoding is None:
        seeds = sorted(set(arm_points) & set(base_points))
    else:
        seeds = _measured_seeds(group, arm, baseline, lambda record: decoding in (record.get("decodings") or {}))
        if not (names and seeds):
            return {}, []
    if not seeds:
        _note(notes, f"{label}: no {base_label} run with the same seed, so no paired delta.")
        return {}, []
    for seed in list(seeds):  # the one pairing rule, the same that `bench` enforces
        problems = seed_pairing_problems(base_points[seed], arm_points[seed])
        if problems:
            _note(notes, f"{label} seed {seed}: not paired with {base_label} ({'; '.join(problems)}), so left out "
                         "of the delta.")
            seeds.remove(seed)
    if not seeds:
        return {}, []
    counts = [base_points[s].train_counts() for s in seeds]
    rows = [(generations(base_points[s].path), generations(arm_points[s].path)) for s in seeds]
    finished = [(finished_flags(rows_a), finished_flags(rows_b)) for rows_a, rows_b in rows]
    wants_tokenizer = any(name in METRICS and "tokenize" in METRICS.get(name).needs for name in names)
    names = _usable_metrics(names, all(c is not None for c in counts), group.model, tokenizer, notes,
                            finished_ok=all(f is not None for pair in finished for f in pair))
    if not names:
        return {}, seeds
    tokenize = tokenizer()[0] if wants_tokenizer else None
    # example-level values the points stored when scored (example_scores.npz), at today's versions
    keys = {name: METRICS.get(name).example_key() for name in names if name in METRICS}
    stored = [(read_example_scores(base_points[s].path, decoding, rows_a, keys),
               read_example_scores(arm_points[s].path, decoding, rows_b, keys))
              for s, (rows_a, rows_b) in zip(seeds, rows)]
    runs, ids = [], None
    for train_counts, (rows_a, rows_b), (finished_a, finished_b), (known_a, known_b) in zip(counts, rows, finished,
                                                                                           stored):
        keys_a = [(r["id"], r["reference"]) for r in rows_a]
        if keys_a != [(r["id"], r["reference"]) for r in rows_b] or (ids is not None and keys_a != ids):
            _note(notes, f"{label}: generations cover other test examples (ids or references) than {base_label}, "
                         "so no paired delta.")
            return {}, seeds
        ids = keys_a
        context = MetricContext(train_counts=train_counts, tokenize=tokenize)
        runs.append(SeedRun([r["prediction"] for r in rows_a], [r["prediction"] for r in rows_b],
                            [r["reference"] for r in rows_a], context, finished_a, finished_b, known_a, known_b))
    return compare_seeds(runs, names, n_boot=n_boot, seed=bootstrap_seed, workers=workers), seeds


def seed_pairing_problems(base, arm) -> list[str]:
    """harness.results.pairing_problems for two Points of one group (CE and an arm, one seed)."""
    from harness.results import pairing_problems

    return pairing_problems(base.record, base.provenance_record, arm.record, arm.provenance_record)


def _usable_metrics(names: list[str], counts_ok: bool, model: str, tokenizer, notes: list[str], *,
                    finished_ok: bool) -> list[str]:
    """Registered metrics whose needs can be met; the rest are named in a footnote. finished_ok:
    every paired generations file records how each output stopped (limit-share)."""
    from harness.metrics import METRICS

    usable, no_context, no_finished, unknown = [], [], [], []
    for name in names:
        if name not in METRICS:
            unknown.append(name)
            continue
        needs = METRICS.get(name).needs
        if ("tokenize" in needs and tokenizer()[0] is None) or ("train_counts" in needs and not counts_ok):
            no_context.append(name)
        elif "finished" in needs and not finished_ok:
            no_finished.append(name)
        else:
            usable.append(name)
    if no_finished:
        _note(notes, f"no delta CI for {', '.join(no_finished)}: {NOT_MEASURED}, the generations do not record "
                     "how each output stopped (points written before result format 3).")
    if no_context:
        error = tokenizer()[1] if any("tokenize" in METRICS.get(n).needs for n in no_context) else None
        why = (f"the tokenizer of {model} could not be loaded ({error})" if error
               else "train_counts.npz is missing")
        _note(notes, f"no delta CI for {', '.join(no_context)}: {why}.")
    if unknown:
        _note(notes, f"no delta CI for {', '.join(unknown)}: not a registered metric in this version.")
    return usable


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)
