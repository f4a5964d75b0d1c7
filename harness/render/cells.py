"""Comparison rows -> a Grid of formatted cells; every renderer draws Grids, so all print the same text.

Two comparison layouts: `pair_grid` (two arms side by side: bench and `score --against`) and
`arm_grid` (one row per arm, mean ± std over seeds and the delta against the baseline, with its
seed-level interval and per-seed deltas over several seeds: `table` and `report`); and `value_grid`
for one file's scores with intervals (`score`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.comparison import BASELINE_LOSS, ArmValue, Comparison
from harness.numbers import format_delta, format_interval, format_p, format_value, is_missing
from harness.results import NOT_MEASURED

ARROWS = {True: "↑", False: "↓"}
PAIR_DIGITS = 4  # values, deltas and interval ends of a two-arm table
VALUE_DIGITS, SPREAD_DIGITS, DELTA_DIGITS = 4, 2, 3  # mean, ± std and delta [interval] of an arm table
ARM_HEADERS = ["metric", "arm", "mean ± std (seeds)", "Δ vs CE [95% CI]", "p", "seed CI", "Δ per seed", "seeds", "n"]
DELTA_COLUMN = 3


@dataclass(frozen=True)
class Row:
    cells: list[str]
    bold: tuple[int, ...] = ()  # columns to emphasise (the best mean)
    block_start: bool = True  # first row of its metric


@dataclass(frozen=True)
class Grid:
    """Formatted cells of one table; `right` marks the right-aligned (number) columns. With `grouped`,
    the first column names a block of rows: LaTeX and HTML print it once and rule off each block."""

    headers: list[str]
    right: list[bool]
    rows: list[Row] = field(default_factory=list)
    grouped: bool = False


def metric_label(metric: str, higher_is_better: bool | None) -> str:
    return f"{metric} {ARROWS[higher_is_better]}" if higher_is_better is not None else metric


def direction_word(higher_is_better: bool | None) -> str:
    return {True: "higher", False: "lower", None: "-"}[higher_is_better]


def pair_grid(rows: Sequence[Comparison], *, headers: tuple[str, str] | None = None, better_column: bool = False,
              missing: str = "") -> Grid:
    """metric | A | B | delta | 95% CI | p: arrows on the metric name, or a `better` column."""
    first = rows[0] if rows else None
    a, b = headers or ((first.baseline.label, first.arm.label) if first else ("A", "B"))
    out = []
    for c in rows:
        cells = [c.metric if better_column else metric_label(c.metric, c.higher_is_better),
                 format_value(c.baseline.mean, PAIR_DIGITS, missing=missing),
                 format_value(c.arm.mean, PAIR_DIGITS, missing=missing),
                 format_delta(c.delta, PAIR_DIGITS, missing=missing),
                 format_interval(c.ci_low, c.ci_high, PAIR_DIGITS, missing=missing),
                 format_p(c.p_value, missing=missing)]
        out.append(Row(cells + ([direction_word(c.higher_is_better)] if better_column else [])))
    names = ["metric", a, b, "delta", "95% CI", "p"] + (["better"] if better_column else [])
    return Grid(names, [False] + [True] * (len(names) - 1), out)


def delta_text(c: Comparison) -> str:
    """`+0.43 [+0.363, +0.494]`: the delta and its interval as the arm table prints them, so a
    sentence quoting a delta (the verdict page) shows the same digits as the table beside it."""
    delta = format_delta(c.delta, DELTA_DIGITS)
    interval = format_interval(c.ci_low, c.ci_high, DELTA_DIGITS)
    return f"{delta} {interval}" if delta and interval else delta


def seed_cells(c: Comparison) -> list[str]:
    """The seed CI and Δ per seed cells: a delta averaged over several seeds shows its hierarchical
    interval (seeds resampled too) and each seed's own delta, in seed order, beside the interval
    over test examples, so a reader sees whether the seeds agree; empty for a one-seed delta."""
    if len(c.per_seed_deltas) < 2:
        return ["", ""]
    seed_ci = format_interval(*(c.seed_ci or (None, None)), DELTA_DIGITS)
    return [seed_ci, " / ".join(format_delta(d, DELTA_DIGITS) for d in c.per_seed_deltas)]


def duration_text(seconds: float) -> str:
    """A compute time in words (`2 h 05 min`, `7 min 02 s`, `45 s`): whole seconds, because the
    timings it sums are wall-clock measurements, not exact to a fraction of a second."""
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def mean_std_text(arm: ArmValue) -> str:
    """`0.4321 ± 0.02`: an arm's mean over seeds and their sample std, as every arm table prints it."""
    spread = f" ± {format_value(arm.std, SPREAD_DIGITS)}" if not is_missing(arm.std) else ""
    return f"{format_value(arm.mean, VALUE_DIGITS)}{spread}"


def arm_headers(rows: Sequence[Comparison]) -> list[str]:
    """The arm table's headers; the delta column names its baseline when that is not the CE arm
    (e.g. the ablation's tables against pdl-official)."""
    baselines = {c.baseline.label for c in rows if c.baseline is not None}
    headers = list(ARM_HEADERS)
    if len(baselines) == 1 and baselines != {BASELINE_LOSS}:  # the CE arm's label is its loss name
        headers[DELTA_COLUMN] = f"Δ vs {baselines.pop()} [95% CI]"
    return headers


def arm_grid(rows: Sequence[Comparison]) -> Grid:
    """metric | arm | mean ± std | Δ [CI] | p | seed CI | Δ per seed | seeds | n, one row per
    (metric, arm); best mean in bold."""
    out = []
    for i, c in enumerate(rows):
        value = mean_std_text(c.arm) if c.arm.measured else NOT_MEASURED
        cells = [metric_label(c.metric, c.higher_is_better), c.arm.label, value, delta_text(c), format_p(c.p_value),
                 *seed_cells(c), str(c.arm.n_seeds), "" if c.n is None else str(int(c.n))]
        out.append(Row(cells, bold=(2,) if c.best else (), block_start=i == 0 or rows[i - 1].metric != c.metric))
    return Grid(arm_headers(rows), [False, False] + [True] * (len(ARM_HEADERS) - 2), out, grouped=True)


def value_grid(results: Iterable[Any], *, missing: str = "") -> Grid:
    """metric | value | 95% CI | better | level, from MetricResult-like records (one arm, no comparison)."""
    rows = [Row([r.name, format_value(r.value, missing=missing),
                 format_interval(r.ci_low, r.ci_high, signed=False, missing=missing),
                 direction_word(r.higher_is_better), r.level]) for r in results]
    return Grid(["metric", "value", "95% CI", "better", "level"], [False, True, True, True, True], rows)


# a point's phases as its records list them (further decodings: generate_<name>)
PHASES = ("load", "train", "validation", "generate", "generate_sampled", "likelihood", "score")


def memory_grid(points: Sequence[tuple[str, int, dict[str, float]]]) -> Grid:
    """Peak CPU memory (GiB, resident) per phase of each run: (arm label, seed, {phase: GiB})."""
    phases = [p for p in PHASES if any(p in peaks for _, _, peaks in points)]
    rows = [Row([label, str(seed)] + [format_value(peaks.get(p), 3, missing="-") for p in phases])
            for label, seed, peaks in points]
    return Grid(["arm", "seed"] + phases, [False, True] + [True] * len(phases), rows)
