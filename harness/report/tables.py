"""Per-group comparison rows: each metric's mean ± std over seeds per arm, and the paired delta against CE.

Delta intervals (docs/reporting.md):
- one seed: the ordinary paired bootstrap of `harness.metrics.compare` (same resampled test
  examples for both arms);
- several seeds: `harness.metrics.paired.seed_averaged_compare` (one resample of the test examples
  shared by every seed, each seed's delta recomputed and averaged). This measures test-set sampling
  noise of the seed-averaged effect; the ± std column shows seed-to-seed spread, and each row also
  carries every seed's own delta and the hierarchical interval that resamples seeds too.
Means and stds come from each point's metrics.json; deltas are recomputed from generations.jsonl
(and train_counts.npz plus the model's tokenizer for rare-token metrics) by harness/report/deltas.py,
so no model is loaded. The rows are harness.comparison records; table_render.py and html.py draw them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.comparison import ArmValue, Comparison, finite_or_none, mark_best
from harness.errors import HarnessError
from harness.render.tidy import tidy_record
from harness.report.collect import Collection, Group, Point
from harness.report.deltas import Arm, TokenizerLoader, group_deltas
from harness.metrics.likelihood import LIKELIHOOD_ROWS, rows_legend
from harness.report.measured import is_further_row, measured_names, measured_value, metric_record
from harness.results import NOT_MEASURED, split_decoding
from harness.workers import default_workers

VALIDATION_CE = "validation-ce"  # plain token cross-entropy on the validation split (every arm)
SEEDS_NOTE = ("Over several seeds: the Δ column's CI (test examples resampled jointly for every seed, each seed's "
              "delta recomputed and averaged) covers the sampling of test examples only; seed CI, the hierarchical "
              "95% CI, also resamples the seeds, so it covers their spread too; Δ per seed: each paired seed's own "
              "delta, in seed order (docs/reporting.md).")


@dataclass(frozen=True)
class TableSettings:
    n_boot: int = 1000
    bootstrap_seed: int = 0
    # processes for ROUGE and the resamples of MTLD-like metrics; the numbers do not depend on it
    workers: int = field(default_factory=default_workers)
    metrics: tuple[str, ...] | None = None  # None: every metric the points report
    deltas: bool = True  # False: means and stds only (no generations read, no bootstrap)
    trust_remote_code: bool = False  # for the tokenizer the rare-token deltas load


@dataclass
class GroupTable:
    group: Group
    main: pd.DataFrame  # the rows as tidy numbers, one per (metric, arm), see ROW_COLUMNS (CSV, plots)
    ablation: pd.DataFrame | None  # one row per arm of a loss whose options vary beyond alpha
    notes: list[str] = field(default_factory=list)  # footnotes: skipped metrics, unpaired arms
    rows: list[Comparison] = field(default_factory=list)  # what the Markdown, LaTeX and HTML tables print


ROW_COLUMNS = [
    "task", "model", "budget", "group", "metric", "higher_is_better", "arm", "loss", "alpha", "options",
    "mean", "std", "n_seeds", "seeds", "n_examples", "delta", "ci_low", "ci_high", "p_value", "delta_seeds",
    "per_seed_deltas", "seed_ci_low", "seed_ci_high", "best",
]


def seed_level(details: dict[str, Any]) -> dict[str, Any]:
    """A seed-averaged delta's per-seed deltas and hierarchical interval (harness.metrics.paired),
    as Comparison fields; nothing for a one-seed delta."""
    ci = details.get("hierarchical_ci")
    return {"per_seed_deltas": tuple(details.get("per_seed_deltas") or ()),
            "seed_ci": tuple(ci) if ci else None}


def metric_order(names: set[str] | list[str]) -> list[str]:
    """The suite's order (ROUGE, diversity, length, rare tokens), unknown names after, then
    validation CE, the likelihood rows and each further decoding's metrics (harness.report.measured)."""
    from harness.metrics import DEFAULT_METRICS, LENGTH_METRICS, LENGTH_ROBUST_METRICS, RARE_TOKEN_METRICS

    known = [*DEFAULT_METRICS, *LENGTH_ROBUST_METRICS, "self-bleu", *LENGTH_METRICS, "semantic-similarity",
             *RARE_TOKEN_METRICS]
    rank = {name: i for i, name in enumerate(known)}
    likelihood = list(LIKELIHOOD_ROWS)

    def key(name: str):
        decoding, metric = split_decoding(name)
        block = 2 if name in LIKELIHOOD_ROWS else (3 if decoding is not None else int(name == VALIDATION_CE))
        within = likelihood.index(name) if name in LIKELIHOOD_ROWS else rank.get(metric, len(known))
        return block, decoding or "", within, metric

    # the main decoding's metrics, validation CE, the likelihood rows, then each further decoding's
    return sorted(names, key=key)


# ----------------------------------------------------------------- building the frames


def _metric_values(points: dict[int, Point], name: str) -> tuple[list[float], int | None, bool | None]:
    """The metric's value per seed, its n, and its direction, from metrics.json (seeds that did
    not measure a further row are left out: see _arm_value)."""
    values, n, direction = [], None, None
    for point in points.values():
        if name == VALIDATION_CE:
            value = point.metrics.get("validation_ce")
            direction = False
        elif is_further_row(name):
            value, n_here, direction_here = measured_value(point.metrics, name)
            n, direction = n_here or n, direction if direction_here is None else direction_here
            if value == NOT_MEASURED:
                continue
        else:
            record = point.metric(name) or {}
            value, n = record.get("value"), record.get("n", n)
            direction = record.get("higher_is_better", direction)
        if value is not None and math.isfinite(float(value)):
            values.append(float(value))
    return values, n, direction


def _report_metrics(group: Group, settings: TableSettings) -> list[str]:
    names = {name for p in group.points for name in p.metrics.get("metrics", {})}
    names |= measured_names([p.metrics for p in group.points])
    if any(p.metrics.get("validation_ce") is not None for p in group.points):
        names.add(VALIDATION_CE)
    if settings.metrics:
        unknown = sorted(set(settings.metrics) - names)
        if unknown:
            raise HarnessError(f"--metrics names {', '.join(unknown)}, which no point of {group.title} reports",
                               f"pick from: {', '.join(metric_order(names))}")
        names &= set(settings.metrics)
    return metric_order(names)


def build_group_table(group: Group, settings: TableSettings = TableSettings(),
                      tokenizer_loader: TokenizerLoader | None = None, baseline: Arm | None = None) -> GroupTable:
    """Means, stds and paired deltas vs CE (or the `baseline` arm named) for every (metric, arm) of one group."""
    names = _report_metrics(group, settings)
    arms, labels, baseline = group.arms(), group.labels(), baseline or group.baseline()
    notes: list[str] = []
    deltas: dict[tuple, tuple[dict, list[int]]] = {}
    bootstrapped = [n for n in names if n != VALIDATION_CE]
    if baseline is None:
        notes.append("no CE arm in this group, so no deltas.")
    elif settings.deltas and bootstrapped:
        deltas, notes = group_deltas(group, bootstrapped, n_boot=settings.n_boot,
                                     bootstrap_seed=settings.bootstrap_seed,
                                     trust_remote_code=settings.trust_remote_code, tokenizer_loader=tokenizer_loader,
                                     baseline=baseline, workers=settings.workers)
    rows, row_arms = [], []
    for name in names:
        values = {arm: _arm_value(group.points_of(arm), name, labels[arm]) for arm in arms}
        base_value = values[baseline][0] if baseline is not None else None
        for arm in arms:
            value, n, direction = values[arm]
            if value is None:
                continue
            paired: dict[str, Any] = {}
            result, seeds = deltas.get(arm, ({}, {}))
            if name in result:
                r = result[name]
                paired = {"delta": finite_or_none(r.delta), "ci_low": finite_or_none(r.ci_low), "ci_high": finite_or_none(r.ci_high),
                          "p_value": finite_or_none(r.p_value), "paired_seeds": tuple(seeds[name]),
                          "paired_baseline": finite_or_none(r.a),
                          **seed_level(r.details)}
            elif name == VALIDATION_CE and baseline is not None and arm != baseline:
                paired = _ce_delta(group.points_of(arm), group.points_of(baseline))
            rows.append(Comparison(name, direction, value, None if arm == baseline else base_value, n=n, **paired))
            row_arms.append(arm)
    rows = mark_best(rows)
    main = _frame(group, rows, row_arms)
    legend = rows_legend(names, not_measured=any(not row.arm.measured for row in rows))
    if legend:
        notes.append(legend)
    notes += rarefaction_notes(group, names)
    if any(len(paired) > 1 for _, seeds in deltas.values() for paired in seeds.values()):
        notes.append(SEEDS_NOTE)
    return GroupTable(group, main, _ablation(group, main), notes, rows)


def rarefaction_notes(group: Group, names: list[str]) -> list[str]:
    """Under a table with a rarefied-distinct-n row, the subsample size m it was measured at, read
    from each point's details: the number means little without m, and arms compare only at one m
    (the references fix it, so they should agree; the note says so when they do not)."""
    from harness.metrics.length_robust import RAREFIED_METRICS

    labels, notes = group.labels(), []
    for metric, n in RAREFIED_METRICS.items():
        rows = [name for name in names if split_decoding(name)[1] == metric]
        if rows:
            details = {labels[arm]: _stored_details(group.points_of(arm).values(), rows) for arm in group.arms()}
            found = {label: records for label, records in details.items() if records}
            if found:  # no stored result (every row not measured): no m to state
                notes.append(_rarefaction_note(metric, n, found))
    return notes


def _stored_details(points, rows: list[str]) -> list[dict[str, Any]]:
    """The details of every stored result of these rows (main or further decoding) in these points."""
    records = [metric_record(point.metrics, row) for point in points for row in rows]
    return [record.get("details") or {} for record in records if record is not None]


def _rarefaction_note(metric: str, n: int, details: dict[str, list[dict[str, Any]]]) -> str:
    """One footnote from each arm's stored details of the metric: m, and the rule that set it."""
    shares = {d["share"] for found in details.values() for d in found if d.get("share")}
    rule = f" (the references' {n}-grams // {round(1 / shares.pop())})" if len(shares) == 1 else ""
    budgets = {label: sorted({d.get("budget") for d in found}, key=lambda m: (m is None, m or 0))
               for label, found in details.items()}
    values = {m for found in budgets.values() for m in found}
    what = f"{metric}: expected distinct {n}-grams in a subsample of m"
    if len(values) == 1 and None not in values:
        return f"{what} = {values.pop()} {n}-grams{rule}, the same m for every arm."
    each = ", ".join(f"{label} " + " and ".join("m not recorded" if m is None else f"m = {m}" for m in found)
                     for label, found in budgets.items())
    return f"{what} {n}-grams{rule}, but not the same m for every arm: {each}."


def _arm_value(points: dict[int, Point], name: str, label: str) -> tuple[ArmValue | None, int | None, bool | None]:
    """One arm's mean ± std over seeds (None without a finite value), its n and the metric's direction."""
    values, n, direction = _metric_values(points, name)
    if not values and all(_not_measured(p, name) for p in points.values()):
        return ArmValue(label, math.nan, None, 0, tuple(sorted(points))), n, direction  # NOT_MEASURED
    if not values:
        return None, n, direction
    summary = stats.across_seeds(values)
    return ArmValue(label, summary.mean, summary.std, summary.n, tuple(sorted(points))), n, direction


def _not_measured(point: Point, name: str) -> bool:
    """The point did not measure this row (an earlier result format): a further row it lacks, or a
    main-decoding metric its generations cannot give (e.g. limit-share without the `stopped` flags),
    so the table prints "not measured" for the arm rather than dropping the row."""
    if is_further_row(name):
        return measured_value(point.metrics, name)[0] == NOT_MEASURED
    record = point.metric(name)  # None for validation CE, which is not a text metric
    return bool(record and (record.get("details") or {}).get("not_measured"))


def _frame(group: Group, rows: list[Comparison], arms: list[tuple[str, str]]) -> pd.DataFrame:
    """The tidy frame: the group and arm columns, then the numbers of each row unformatted."""
    budget = group.budget()
    records = [{"task": group.task, "model": group.model, "budget": budget, "group": group.key,
                "loss": arm[0], "alpha": json.loads(arm[1]).get("alpha"), "options": arm[1], **tidy_record(row)}
               for row, arm in zip(rows, arms)]
    return pd.DataFrame(records, columns=ROW_COLUMNS)


def _ce_delta(points: dict[int, Point], base: dict[int, Point]) -> dict[str, Any]:
    """Validation CE is one number per run (no examples to resample): mean paired difference only."""
    from harness.report.deltas import seed_pairing_problems

    seeds = [s for s in sorted(set(points) & set(base))
             if points[s].metrics.get("validation_ce") is not None and base[s].metrics.get("validation_ce") is not None
             and not seed_pairing_problems(base[s], points[s])]  # the one pairing rule, as for the metrics
    diffs = [points[s].metrics["validation_ce"] - base[s].metrics["validation_ce"] for s in seeds]
    if not diffs:
        return {}
    return {"delta": float(np.mean(diffs)), "paired_seeds": tuple(seeds),
            "per_seed_deltas": tuple(float(d) for d in diffs) if len(diffs) > 1 else ()}


def direction_of(value: Any) -> bool | None:
    """True/False/None from a frame cell (numpy bools and NaN included)."""
    return None if value is None or pd.isna(value) else bool(value)


def _ablation(group: Group, main: pd.DataFrame) -> pd.DataFrame | None:
    """Wide table over the arms of each loss whose options vary beyond alpha (normalisation, ...)."""
    by_loss: dict[str, list[dict]] = {}
    for loss, options in group.arms():
        by_loss.setdefault(loss, []).append(json.loads(options))
    frames = []
    for loss, option_sets in by_loss.items():
        keys = sorted({k for o in option_sets for k in o})
        varying = [k for k in keys if len({json.dumps(o.get(k)) for o in option_sets}) > 1]
        if not [k for k in varying if k != "alpha"]:
            continue
        part = main[main["loss"] == loss]
        wide = part.pivot_table(index="options", columns="metric", values="mean", sort=False).reset_index()
        for key in reversed(varying):
            wide.insert(0, key, [json.loads(o).get(key) for o in wide["options"]])
        wide.insert(0, "loss", loss)
        frames.append(wide.drop(columns="options"))
    if not frames:
        return None
    ablation = pd.concat(frames, ignore_index=True)
    metric_columns = [c for c in metric_order(set(main["metric"])) if c in ablation.columns]
    first = [c for c in ablation.columns if c not in metric_columns]
    return ablation[first + metric_columns]


def build_tables(collection: Collection, settings: TableSettings = TableSettings(),
                 tokenizer_loader: TokenizerLoader | None = None) -> list[GroupTable]:
    from harness.report.collect import complete_groups

    return [build_group_table(g, settings, tokenizer_loader) for g in complete_groups(collection)]
