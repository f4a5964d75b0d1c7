"""The verdict page (docs/results.md): the reference sweep (results/reference/plan.yaml) per task,
rebuilt from the results tree alone by `pdl-bench reference`, never typed by hand.

Per task, in the plan's order: which planned points are complete and which are missing (and why),
the verdict sentences and their caveat, the group table (harness.report.tables: mean ± std over
seeds, paired deltas against the CE baseline with 95% CI and p), three figures
(harness.report.plots) and a few example outputs. Every number comes from the table machinery and is
written by harness.render; every sentence is chosen by a fixed rule below from those numbers.

Byte-identical rebuilds: the tree is read in sorted order and shown in the plan's order, the
bootstrap is seeded (PAGE_SETTINGS), examples are picked by a seeded rule, paths are written
relative to the results folder, figures are saved at a fixed size and dpi with no date or software
in their metadata (plots.save_figure), and nothing depends on the clock, the host or a process.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.comparison import BASELINE_LOSS, Comparison
from harness.errors import HarnessError
from harness.io import write_text_atomic
from harness.reference_plan import PLAN_FILE, PLAN_FILES, ReferenceArm, ReferencePlan
from harness.numbers import format_delta, format_interval
from harness.render.cells import DELTA_DIGITS, Grid, Row, delta_text, duration_text
from harness.render.markdown import markdown_table, markdown_text
from harness.report.collect import (
    Collection,
    Group,
    Point,
    collect,
)
from harness.report.deltas import TokenizerLoader
from harness.report.tables import GroupTable, TableSettings, build_group_table
from harness.results import NOT_MEASURED, PointConfig, arm_labels, decoding_metric, read_config, slug
from harness.store import UNREADABLE_HINT, PointStore, point_state

Arm = tuple[str, str]  # (loss, options as sorted JSON): harness.results.PointConfig.arm

COMMAND = "pdl-bench reference"
MAKE_TARGET = "make reference"
PAGE_SETTINGS = TableSettings()  # the committed page's bootstrap: 1000 resamples, seed 0
EXAMPLE_SEED = 0  # numpy seed of harness.report.html.pick_examples, the report's own example rule
# The task's main metrics: the first of each list that the task scores (its `metrics` key).
DIVERSITY_PREFERENCE = ("rarefied-distinct-2", "distinct-2", "distinct-1", "ngram-entropy-4")
# BLEU first: a task that scores BLEU (style transfer) asks for the reference's exact wording;
# otherwise ROUGE-L, the longest-common-subsequence overlap (summaries, dialogue).
QUALITY_PREFERENCE = ("bleu", "rougeL", "rougeLsum", "rouge1", "rouge2", "chrf")
FIGURE_KINDS = ("diversity_vs_alpha", "quality_vs_diversity", "rare_tokens", "nll_by_bucket")
SAMPLED = "sampled"  # the further decoding the page reads beside the greedy one (the tasks' default `decodings`)
NOT_RUN = "not run yet (no folder)"


# ----------------------------------------------------------------- the plan against the tree


def resolved_arm(arm: ReferenceArm) -> Arm:
    """The plan's arm as the runner records it (every option filled in by the loss's schema), so a
    plan entry `pdl, alpha 0.25` matches the folder whose config.json holds all PDL options."""
    from harness.losses import validate_options

    options = validate_options(arm.loss, arm.options).model_dump(mode="json")
    # PointConfig.arm is the one arm rule; the other fields do not enter it.
    return PointConfig(task={}, model="", loss=arm.loss, loss_options=options, seed=0).arm


def planned_arms(plan: ReferencePlan) -> list[Arm]:
    """Every arm in the plan's order; the first must be the tables' baseline (CE, every delta is
    taken against it), or the page would print deltas against another arm than the plan names."""
    arms = [resolved_arm(arm) for arm in plan.arms]
    if arms[0][0] != BASELINE_LOSS:
        raise HarnessError(f"the reference plan's first arm is {plan.arms[0].loss!r}; the verdict page takes "
                           f"every delta against {BASELINE_LOSS!r}",
                           f"list `{{loss: {BASELINE_LOSS}}}` first under `arms:` in {PLAN_FILE}")
    return arms


def planned_points(plan: ReferencePlan, arms: list[Arm]) -> set[tuple[Arm, int]]:
    """(arm, seed) of every point the plan names for one task (`arms`: planned_arms(plan))."""
    return {(arms[index], seed) for index, seed in plan.arm_seed_pairs()}


def read_tree(results_dir: Path) -> Collection:
    """The collected tree; an existing folder with no point yet (a sweep not started: collect's
    "no result points" error) reads as empty, so the page lists every planned point as missing."""
    root = Path(results_dir)
    if not root.is_dir():
        return collect(root)  # its error names the folder
    try:
        return collect(root)
    except HarnessError:
        return Collection(root, [], [])


@dataclass
class TaskResults:
    """One task of the plan: the compared group (its planned points only) and what is not in it."""

    task: str
    group: Group | None  # None: no planned point of this task has a folder yet
    missing: list[tuple[str, int, str, str]] = field(default_factory=list)  # (arm label, seed, folder, why)
    not_compared: list[tuple[str, str]] = field(default_factory=list)  # (folder, why)
    other_plans: str = ""  # how many complete points of the task only the tree's other plans name


def unfinished_keys(groups: list[Group]) -> dict[Path, tuple[Arm, int]]:
    """The arm and seed of every unfinished folder of the groups (collect read their configs, so they
    are readable)."""
    keys = {}
    for group in groups:
        for missing in group.missing:
            config = read_config(missing.path)
            keys[missing.path] = (config.arm, config.seed)
    return keys


def compared_group(groups: list[Group], planned: set[tuple[Arm, int]],
                   unfinished: dict[Path, tuple[Arm, int]]) -> Group | None:
    """The one configuration a task's section compares: the group with the most complete planned
    points, then the most planned folders, then the smaller key. A stale configuration left in the
    tree (an older budget) is then listed as not compared, never mixed into the numbers."""
    def counts(group: Group) -> tuple[int, int]:
        done = sum((p.arm, p.seed) in planned for p in group.points)
        return done, done + sum(unfinished[m.path] in planned for m in group.missing)

    candidates = [g for g in groups if counts(g)[1]]
    return min(candidates, key=lambda g: (-counts(g)[0], -counts(g)[1], g.key), default=None)


def folder_state(path: Path) -> str:
    """Why a planned folder has no result, in words that depend on the tree only (no pid, host or
    time): harness.store.point_state decides; a failure shows error.json's first line."""
    state = point_state(PointStore(path))
    if state.kind == "failed":
        return f"failed: {state.detail}"
    return {"running": "running", "interrupted": "interrupted (no metrics.json; the command resumes it)",
            "unreadable": f"unreadable metrics.json ({UNREADABLE_HINT})",
            "not started": NOT_RUN}.get(state.kind, state.kind)


def task_results(collection: Collection, task: str, plan: ReferencePlan, arms: list[Arm],
                 labels: dict[Arm, str], plan_file: str = PLAN_FILE) -> TaskResults:
    """The task's compared group restricted to the plan, each planned point's state, and every other
    folder of the task with the reason it is not compared (the tree's other plans' folders are
    counted, not listed: their own page lists them)."""
    planned = planned_points(plan, arms)
    groups = [g for g in collection.groups if g.task == task]
    keys = unfinished_keys(groups)
    group = compared_group(groups, planned, keys)
    result = TaskResults(task, None)
    unfinished: dict[tuple[Arm, int], Path] = {}
    if group is not None:
        unfinished = {keys[m.path]: m.path for m in group.missing if keys[m.path] in planned}
        result.group = replace(group, points=[p for p in group.points if (p.arm, p.seed) in planned],
                               missing=[m for m in group.missing if m.path in unfinished.values()])
    done = {(p.arm, p.seed) for p in result.group.points} if result.group is not None else set()
    for index, arm in enumerate(arms):
        for seed in plan.arm_seeds(index):
            if (arm, seed) not in done:
                path = unfinished.get((arm, seed))
                result.missing.append((labels[arm], seed, "" if path is None else _relative(path, collection.root),
                                       NOT_RUN if path is None else folder_state(path)))
    elsewhere = other_plans_points(collection.root, plan_file, task) - planned
    result.not_compared = not_compared(collection, task, groups, group, planned | elsewhere, keys)
    shared = sum((p.arm, p.seed) in elsewhere for p in group.points) if group is not None else 0
    if shared:
        others = ", ".join(name for name in PLAN_FILES if name != plan_file)
        result.other_plans = (f"{shared} other complete points of this configuration belong to the tree's other "
                              f"plan ({others}) and are read on its page.")
    return result


def other_plans_points(results_dir: Path, plan_file: str, task: str) -> set[tuple[Arm, int]]:
    """(arm, seed) of every point of `task` the tree's other plan files name (a point two plans
    share is read by both pages; one only the other plan names belongs to that plan's page, and
    only when that plan covers the task: otherwise no page reads it and it is listed)."""
    from harness.reference_plan import PLAN_FILES, read_plan

    points: set[tuple[Arm, int]] = set()
    for name in PLAN_FILES:
        if name != plan_file and (Path(results_dir) / name).is_file():
            other = read_plan(results_dir, name)
            if task not in other.tasks:
                continue
            points |= planned_points(other, [resolved_arm(arm) for arm in other.arms])
    return points


def not_compared(collection: Collection, task: str, groups: list[Group], group: Group | None,
                 planned: set[tuple[Arm, int]], keys: dict[Path, tuple[Arm, int]]) -> list[tuple[str, str]]:
    """(folder, why) for every folder of the task outside the page: arms or seeds the plan does not
    list, other configurations of the task, unreadable folders. Listed, never dropped silently."""
    root, out = collection.root, []
    if group is not None:
        out += [(_relative(p.path, root), "not in the plan") for p in group.points if (p.arm, p.seed) not in planned]
        out += [(_relative(m.path, root), "not in the plan") for m in group.missing if keys[m.path] not in planned]
    for other in groups:
        if other is not group:
            why = f"another configuration ({other.distinction or 'group ' + other.key}); rerun or remove it"
            out += [(_relative(item.path, root), why) for item in [*other.points, *other.missing]]
    grouped = {m.path for g in groups for m in g.missing}
    out += [(_relative(m.path, root), m.reason) for m in collection.missing
            if m.path not in grouped and m.path.relative_to(root).parts[0] == slug(task)]
    return sorted(out)


def _relative(path: Path, root: Path) -> str:
    """A folder as the page names it: relative to the results folder, so the page does not depend
    on where the tree was checked out."""
    return Path(path).relative_to(root).as_posix()


# ----------------------------------------------------------------- the verdict rules


def main_metric(preference: tuple[str, ...], task_metrics: list[str]) -> str | None:
    """The first metric of `preference` that the task scores (the rule is in the module constants)."""
    return next((name for name in preference if name in task_metrics), None)


def interval_sign(low: float | None, high: float | None) -> int:
    """+1 when an interval lies above 0, -1 when below, 0 when it holds 0 or there is none."""
    if low is None or high is None:
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def example_sign(row: Comparison | None) -> int:
    """The sign of the delta's 95% CI over test examples (interval_sign)."""
    return 0 if row is None else interval_sign(row.ci_low, row.ci_high)


def _with_sign(delta: float, sign: int) -> bool:
    return delta > 0 if sign > 0 else delta < 0


def ci_sign(row: Comparison | None) -> int:
    """The one rule for "a difference the test resolves": the example-level CI excludes 0 and, for
    a delta over several seeds, so does the hierarchical CI (seeds resampled too) and every seed's
    own delta has the same sign. Otherwise 0 (seed_disagreement says why)."""
    sign = example_sign(row)
    if sign == 0 or len(row.per_seed_deltas) < 2:
        return sign
    agree = all(_with_sign(d, sign) for d in row.per_seed_deltas)
    return sign if interval_sign(*(row.seed_ci or (None, None))) == sign and agree else 0


def seed_disagreement(row: Comparison | None) -> str:
    """Why a delta that the test examples resolve is not called a change: the seeds that go the
    other way, or a seed-level CI that holds 0; '' when there is nothing to say."""
    sign = example_sign(row)
    if sign == 0 or ci_sign(row) != 0:
        return ""
    other = [f"seed {seed} {format_delta(d, DELTA_DIGITS)}" for seed, d in zip(row.paired_seeds, row.per_seed_deltas)
             if not _with_sign(d, sign)]
    if other:
        return "; not every seed agrees: " + ", ".join(other)
    return f"; the seed-level CI {format_interval(*row.seed_ci, DELTA_DIGITS)} holds 0" if row.seed_ci else ""


def diversity_words(metric: str, row: Comparison) -> str:
    words = {1: f"raises {metric}", -1: f"lowers {metric}", 0: f"leaves {metric} unresolved"}[ci_sign(row)]
    return words + (" across seeds" if seed_disagreement(row) else "")


def quality_words(metric: str, row: Comparison) -> str:
    """A cost or a gain in the metric's own direction (lower is better flips the sign)."""
    sign = ci_sign(row)
    if sign == 0:
        return f"with no {metric} change the test can resolve"
    if row.higher_is_better is None:
        return f"{'raises' if sign > 0 else 'lowers'} {metric}"
    better = sign > 0 if row.higher_is_better else sign < 0
    return f"with a {metric} gain" if better else f"at a {metric} cost"


def _measured(row: Comparison | None) -> bool:
    return row is not None and row.delta is not None and math.isfinite(row.delta)


def diversity_fallback(verdict: "TaskVerdict", metric: str) -> str:
    """' (rarefied-distinct-2 is undefined for its outputs: ...)' when an arm is read on a later metric."""
    if metric == verdict.diversity:
        return ""
    return (f" ({verdict.diversity} is undefined for its outputs, which hold fewer n-grams than its budget; "
            f"read on {metric})")


def no_resolved_difference(div_row: Comparison, q_row: Comparison | None) -> bool:
    """Neither main metric's CI excludes 0: the "no difference the test can resolve" verdict."""
    return all(ci_sign(r) == 0 for r in (div_row, q_row) if r is not None)


def _phrase(words: str, row: Comparison, joiner: str) -> str:
    """`raises distinct-2 by +0.3 [...]` when the CI resolves it, `... unresolved (+0.01 [...])` otherwise."""
    return f"{words} {joiner} {delta_text(row)}" if ci_sign(row) else f"{words} ({delta_text(row)}{seed_disagreement(row)})"


def arm_sentence(label: str, diversity: str, div_row: Comparison | None, quality: str | None,
                 q_row: Comparison | None) -> str:
    """One arm's verdict from its two paired deltas (the quality part is left out when the task
    scores no overlap metric)."""
    if not _measured(div_row):
        return f"`{label}`: not measured yet (no complete point paired with {BASELINE_LOSS})."
    q_row = q_row if quality is not None and _measured(q_row) else None
    if no_resolved_difference(div_row, q_row):
        numbers = (f"{diversity} {delta_text(div_row)}{seed_disagreement(div_row)}"
                   + (f"; {quality} {delta_text(q_row)}{seed_disagreement(q_row)}" if q_row else ""))
        return f"`{label}`: no difference from {BASELINE_LOSS} the test can resolve ({numbers})."
    parts = [_phrase(diversity_words(diversity, div_row), div_row, "by")]
    if q_row is not None:
        parts.append(_phrase(quality_words(quality, q_row), q_row, "of"))
    return f"`{label}`: {', '.join(parts)}."


def headline_reading(diversity: str, div_row: Comparison | None, quality: str | None, q_row: Comparison | None) -> str:
    """The headline table's short form of arm_sentence (the same rules, without the numbers)."""
    if not _measured(div_row):
        return "not measured yet"
    q_row = q_row if quality is not None and _measured(q_row) else None
    if no_resolved_difference(div_row, q_row):
        return "no difference the test can resolve"
    return ", ".join([diversity_words(diversity, div_row)] + ([quality_words(quality, q_row)] if q_row else []))


def likelihood_words(where: str, row: Comparison | None) -> str:
    """`lowers NLL on the rarest 10% of reference tokens by -0.2 [...]`, by the CI rule."""
    sign = ci_sign(row)
    if sign == 0:
        return f"leaves NLL on {where} unresolved ({delta_text(row)})"
    return f"{'lowers' if sign < 0 else 'raises'} NLL on {where} by {delta_text(row)}"


def mechanism_sentence(rarest: Comparison | None, frequent: Comparison | None, share: str, seeds: str = "") -> str:
    """The arm's likelihood-by-frequency reading (teacher-forced, no decoding), by the CI rule."""
    if not (_measured(rarest) and _measured(frequent)):
        return "Likelihood by frequency: not measured (no paired point of result format 3 yet)."
    return (f"Likelihood by frequency (teacher-forced{', ' + seeds if seeds else ''}): "
            f"{likelihood_words(f'the rarest {share} of reference tokens', rarest)}, "
            f"{likelihood_words(f'the most frequent {share}', frequent)}.")


def device_words(points: list[Point]) -> str:
    """CPU or GPU (its name), from each point's recorded device."""
    kinds = set()
    for point in points:
        device = point.provenance.get("device") or {}
        if isinstance(device, dict) and device.get("cuda"):
            kinds.add(f"GPU ({device.get('gpu', 'unnamed')})")
        else:
            kinds.add("CPU")
    return " and ".join(sorted(kinds)) or "an unrecorded device"


def caveat(group: Group, plan: ReferencePlan) -> str:
    """The fixed sentence on what the task's numbers cannot support, filled in from provenance."""
    n_test = sorted({(p.provenance.get("n_examples") or {}).get("test") or p.metrics.get("n_test")
                     for p in group.points} - {None})
    seeds = ", ".join(map(str, group.seeds))
    return (f"Caveat: {group.model}, {group.budget()}, {'/'.join(map(str, n_test))} test examples, run on "
            f"{device_words(group.points)}, seeds {seeds} of the planned {', '.join(map(str, plan.all_seeds))}. "
            "These numbers cannot say how the losses behave with larger models, full-data training budgets, "
            "other decoding settings or other data; the CIs shown cover the sampling of test examples for "
            "the seeds run (the ± std column shows the seeds' spread, and a sentence calls a change only when "
            "the seeds agree too), not seeds never run.")


def compute_seconds(points: list[Point]) -> float:
    """Total recorded compute of some points: the sum of every phase timing in their provenance."""
    return float(sum(sum(p.provenance_record.timings.values()) for p in points))


# ----------------------------------------------------------------- one task


@dataclass
class TaskVerdict:
    results: TaskResults
    table: GroupTable | None
    quality: str | None
    diversity: str | None
    labels: dict[Arm, str]
    figures: dict[str, Path] = field(default_factory=dict)
    _empty: dict[Arm, tuple[int, int]] = field(default_factory=dict, repr=False)

    def empty_outputs(self, arm: Arm) -> tuple[int, int]:
        """(empty, all) test outputs of the arm, read once for the sentence and the headline;
        (0, 0) for a task with no points yet."""
        if arm not in self._empty:
            group = self.results.group
            self._empty[arm] = empty_outputs(group.points, arm) if group is not None else (0, 0)
        return self._empty[arm]

    def diversity_for(self, arm: Arm, decoding: str | None = None) -> str | None:
        """The main diversity metric, or, for an arm whose outputs leave it undefined (rarefied
        distinct-n of outputs with fewer n-grams than its budget), the next of DIVERSITY_PREFERENCE
        that the arm has a delta on (diversity_fallback says so in its sentence)."""
        if self.diversity is None:
            return None
        later = DIVERSITY_PREFERENCE[DIVERSITY_PREFERENCE.index(self.diversity):]
        return next((m for m in later if _measured(self.row(m, arm, decoding))), self.diversity)

    def row(self, metric: str | None, arm: Arm, decoding: str | None = None) -> Comparison | None:
        """The table row of the arm on a metric (of a further decoding when named)."""
        if self.table is None or metric is None:
            return None
        label = self.labels[arm]
        metric = metric if decoding is None else decoding_metric(decoding, metric)
        return next((r for r in self.table.rows if r.metric == metric and r.arm.label == label), None)

    def seed_words(self, row: Comparison | None) -> str:
        """`seed 0` when a delta pairs fewer seeds than the task has (rows measured at load time
        exist only for points of result format 3), else ''."""
        group = self.results.group
        if row is None or not row.paired_seeds or group is None or list(row.paired_seeds) == group.seeds:
            return ""
        return f"seed{'s' if len(row.paired_seeds) > 1 else ''} {', '.join(map(str, row.paired_seeds))}"

    def fewer_seeds(self, row: Comparison | None) -> str:
        """` (seed 0)`, or '' (see seed_words)."""
        words = self.seed_words(row)
        return f" ({words})" if words else ""

    @property
    def bucket_share(self) -> str:
        """The share of training token mass one likelihood bucket holds (`10%`)."""
        group = self.results.group
        n_buckets = next((p.metrics["token_likelihood"]["n_buckets"] for p in (group.points if group else [])
                          if p.metrics.get("token_likelihood")), 10)
        return f"{100 / n_buckets:g}%"


def judge_task(results: TaskResults, labels: dict[Arm, str], settings: TableSettings,
               tokenizer_loader: TokenizerLoader | None) -> TaskVerdict:
    """The task's table and main metrics (the table's own arm labels win for the arms it has)."""
    group = results.group
    if group is None or not group.points:
        return TaskVerdict(results, None, None, None, labels)
    metrics = group.metric_list()
    table = build_group_table(group, settings, tokenizer_loader)
    return TaskVerdict(results, table, main_metric(QUALITY_PREFERENCE, metrics),
                       main_metric(DIVERSITY_PREFERENCE, metrics), {**labels, **group.labels()})


def write_task_figures(verdict: TaskVerdict, figures_dir: Path) -> dict[str, Path]:
    """The task's three figures as <figures_dir>/<task>__<kind>.png; a kind the data cannot draw
    yet removes its earlier file, so the folder never shows a figure the page does not."""
    from harness.report import plots

    group, task = verdict.results.group, verdict.results.task
    made = {}
    if verdict.table is not None:
        frame = plots.seed_means(group)
        made = {"diversity_vs_alpha": plots.diversity_vs_alpha(group, frame),
                "quality_vs_diversity": plots.quality_vs_diversity(group, frame, quality=verdict.quality,
                                                                   diversity=verdict.diversity),
                "rare_tokens": plots.rare_token_usage(group),
                "nll_by_bucket": plots.nll_by_bucket(group, PAGE_SETTINGS)}
    written = {}
    for kind in FIGURE_KINDS:
        stem = Path(figures_dir) / f"{task}__{kind}"
        if made.get(kind) is not None:
            (written[kind],) = plots.save_figure(made[kind], stem, formats=("png",))
        else:
            stem.with_name(f"{stem.name}.png").unlink(missing_ok=True)
    return written


# ----------------------------------------------------------------- Markdown


def empty_outputs(points: list[Point], arm: Arm) -> tuple[int, int]:
    """(empty, all) test outputs of an arm's complete points, over its seeds. An arm that generates
    nothing has low diversity and quality, but its deltas alone do not say why: the page names it."""
    predictions = [row.get("prediction") or "" for p in points if p.arm == arm for row in p.generations()]
    return sum(not text.strip() for text in predictions), len(predictions)


LENGTH_CHANGE = 0.10  # a length change the verdict names: resolved by ci_sign and above 10% of ce's mean


def length_words(verdict: TaskVerdict, arm: Arm) -> str:
    """' Its outputs are 50% shorter than ce's (mean-length -11.1 [...]).' when the length change
    is resolved and larger than LENGTH_CHANGE: distinct-n rises as outputs shorten, so a diversity
    claim must be read with it."""
    row = verdict.row("mean-length", arm)
    if not _measured(row) or ci_sign(row) == 0 or row.baseline is None or not row.baseline.mean:
        return ""
    change = row.delta / row.baseline.mean
    if abs(change) <= LENGTH_CHANGE:
        return ""
    return (f" Its outputs are {abs(change):.0%} {'shorter' if change < 0 else 'longer'} than "
            f"{BASELINE_LOSS}'s (mean-length {delta_text(row)}).")


def loop_words(verdict: TaskVerdict, arm: Arm) -> str:
    """' Loops in 2% of its outputs against 19% for ce.' when the loop share differs (ci_sign)."""
    row = verdict.row("loop-share", arm)
    if not _measured(row) or ci_sign(row) == 0 or row.baseline is None:
        return ""
    return f" Loops in {row.arm.mean:.0%} of its outputs against {row.baseline.mean:.0%} for {BASELINE_LOSS}."


def empty_words(verdict: TaskVerdict, arm: Arm) -> str:
    """' N of M test outputs are empty.' where any is, else ''."""
    empty, total = verdict.empty_outputs(arm)
    return f" {empty} of its {total} test outputs are empty." if empty else ""


def arm_verdicts(verdict: TaskVerdict, arms: list[Arm]) -> list[str]:
    """One sentence per non-baseline arm of the plan, in plan order, with two sub-items: the same
    rules on the sampled decoding, and the likelihood by frequency (the baseline gets a sentence
    only when some of its outputs are empty, which every delta against it inherits)."""
    if verdict.diversity is None:
        return ["No diversity metric of " + ", ".join(DIVERSITY_PREFERENCE) + " is scored by this task: no verdict."]
    group = verdict.results.group
    lines = []
    if baseline_empty := empty_words(verdict, arms[0]):
        lines.append(f"`{verdict.labels[arms[0]]}` (the baseline):{baseline_empty}")
    for arm in arms[1:]:
        diversity = verdict.diversity_for(arm)
        div_row = verdict.row(diversity, arm)
        text = arm_sentence(verdict.labels[arm], diversity, div_row, verdict.quality,
                            verdict.row(verdict.quality, arm))
        if fallback := diversity_fallback(verdict, diversity):
            text = f"{text[:-1]}{fallback}."  # inside the sentence, before its full stop
        if div_row is not None and div_row.paired_seeds and list(div_row.paired_seeds) != group.seeds:
            text += f" Paired on seed(s) {', '.join(map(str, div_row.paired_seeds))} only."
        rarest = verdict.row("nll-rarest", arm)
        mechanism = mechanism_sentence(rarest, verdict.row("nll-most-frequent", arm), verdict.bucket_share,
                                       verdict.seed_words(rarest))
        lines.append(text + length_words(verdict, arm) + empty_words(verdict, arm) + loop_words(verdict, arm)
                     + f"\n  - {sampled_sentence(verdict, arm)}\n  - {mechanism}")
    return lines


def sampled_sentence(verdict: TaskVerdict, arm: Arm) -> str:
    """The same verdict rules read on the sampled decoding (nucleus p 0.9, temperature 1)."""
    diversity = verdict.diversity_for(arm, SAMPLED)
    div_row = verdict.row(diversity, arm, SAMPLED)
    if not _measured(div_row):
        return "Sampled decoding: not measured (no paired point of result format 3 yet)."
    reading = headline_reading(diversity, div_row, verdict.quality, verdict.row(verdict.quality, arm, SAMPLED))
    numbers = f"{diversity} {delta_text(div_row)}"
    q_row = verdict.row(verdict.quality, arm, SAMPLED)
    if verdict.quality is not None and _measured(q_row):
        numbers += f", {verdict.quality} {delta_text(q_row)}"
    return f"Sampled decoding{verdict.fewer_seeds(div_row)}: {reading} ({numbers})."


def headline_grid(verdicts: list[TaskVerdict], arms: list[Arm]) -> Grid:
    """task | arm | Δ diversity [CI] | Δ quality [CI] | reading: every non-baseline arm of every task."""
    rows = []
    for v in verdicts:
        for arm in arms[1:]:
            diversity, sampled_diversity = v.diversity_for(arm), v.diversity_for(arm, SAMPLED)
            div_row, q_row = v.row(diversity, arm), v.row(v.quality, arm)
            reading = (headline_reading(diversity, div_row, v.quality, q_row) if diversity
                       else "not measured yet" if v.table is None else "no verdict")
            empty, total = v.empty_outputs(arm)
            if empty:
                reading += f" ({empty} of {total} outputs empty)"
            sampled, rarest = v.row(sampled_diversity, arm, SAMPLED), v.row("nll-rarest", arm)
            cells = [v.results.task, v.labels[arm],
                     f"{diversity} {delta_text(div_row)}" if div_row is not None and diversity else "",
                     f"{v.quality} {delta_text(q_row)}" if q_row is not None and v.quality else "", reading,
                     f"{sampled_diversity} {delta_text(sampled)}{v.fewer_seeds(sampled)}"
                     if _measured(sampled) and sampled_diversity else NOT_MEASURED,
                     f"{delta_text(rarest)}{v.fewer_seeds(rarest)}" if _measured(rarest) else NOT_MEASURED]
            rows.append(Row(cells, block_start=arm == arms[1]))
    shares = {v.bucket_share for v in verdicts}
    rarest = f"rarest {shares.pop()}" if len(shares) == 1 else "rarest bucket"
    return Grid(["task", "arm", f"diversity Δ vs {BASELINE_LOSS} [95% CI]", f"quality Δ vs {BASELINE_LOSS} [95% CI]",
                 "reading", "sampled: diversity Δ [95% CI]", f"NLL Δ, {rarest} [95% CI]"],
                [False, False, True, True, False, True, True], rows)


def examples_markdown(group: Group, k: int, arms: list[Arm], labels: dict[Arm, str]) -> str:
    """k test examples with the same id in every arm (html.pick_examples: the report's seeded rule),
    each as source, reference and every planned arm's output, escaped."""
    from harness.report.html import pick_examples

    run_seed, examples = pick_examples(group, k, EXAMPLE_SEED)
    if not examples:
        return "No test example was generated by every arm with a common seed yet."
    parts = [(f"{len(examples)} test examples drawn with numpy seed {EXAMPLE_SEED} from training seed {run_seed}; "
              "the same input id for every arm.")]
    for example in examples:
        rows = [Row(["source", markdown_text(example["source"])])] if example.get("source") else []
        rows.append(Row(["reference", markdown_text(example["reference"])]))
        for arm in arms:
            output = example["outputs"].get(labels[arm])
            rows.append(Row([f"`{labels[arm]}`", markdown_text(output) if output is not None
                             else "*(no complete point with this seed yet)*"]))
        parts.append(f"**Example `{markdown_text(example['id'])}`**\n\n"
                     + markdown_table(Grid(["", "text"], [False, False], rows)))
    return "\n\n".join(parts)


def missing_markdown(results: TaskResults) -> str:
    lines = [f"- `{label}` seed {seed}" + (f" (`{folder}`)" if folder else "") + f": {markdown_text(why)}"
             for label, seed, folder, why in results.missing] or ["None: every planned point of this task is complete."]
    if results.not_compared:
        lines += ["", "Folders of this task that the page does not compare:", ""]
        lines += [f"- `{folder}`: {markdown_text(why)}" for folder, why in results.not_compared]
    if results.other_plans:
        lines += ["", results.other_plans]
    return "\n".join(lines)


FIGURE_CAPTIONS = {
    "diversity_vs_alpha": "Diversity and ROUGE against alpha (mean ± std over seeds); dashed line and square: "
                          "the CE arm (alpha = 0).",
    "quality_vs_diversity": "The task's main quality metric against its main diversity metric, one point per arm "
                            "(mean over seeds; error bars: std over seeds).",
    "rare_tokens": "Share of generated tokens per training-frequency bucket for every arm and the references "
                   "(left), and its ratio to the references' share (right).",
    "nll_by_bucket": "Teacher-forced NLL of the test reference tokens, Δ vs CE per training-frequency bucket "
                     "(one line per arm, 95% paired-bootstrap CI over test examples, averaged over the seeds "
                     "named in the legend; below 0: the arm predicts those tokens better).",
}


def task_markdown(verdict: TaskVerdict, plan: ReferencePlan, arms: list[Arm], figure_link: str) -> str:
    """The task's section: status, verdict, table, figures, examples, missing points."""
    from harness.report.table_render import to_markdown

    results, group = verdict.results, verdict.results.group
    n_planned = plan.points_per_task
    done = len(group.points) if group is not None else 0
    parts = [f"## {results.task}", ""]
    status = f"{done} of {n_planned} planned points complete"
    if done:
        status += f"; compute {duration_text(compute_seconds(group.points))} (sum of their recorded phase timings)"
    parts += [status + ".", ""]
    if verdict.table is None:
        parts += ["No complete point yet: no table, figure or verdict.", ""]
    else:
        parts += ["### Verdict", "", (f"Main metrics: diversity `{verdict.diversity}`, quality `{verdict.quality}` "
                                      "(rules under the headline). Each sentence compares an arm with "
                                      f"`{BASELINE_LOSS}` of the same seeds."), ""]
        parts += [f"- {line}" for line in arm_verdicts(verdict, arms)]
        parts += ["", caveat(group, plan), "", to_markdown(verdict.table).replace("### ", "### Table: ", 1), ""]
        parts += ["### Figures", ""]
        for kind, path in verdict.figures.items():
            parts += [f"![{kind}]({figure_link}/{path.name})", "", f"*{FIGURE_CAPTIONS[kind]}*", ""]
        if plan.examples_per_arm:
            parts += ["### Examples", "", examples_markdown(group, plan.examples_per_arm, arms, verdict.labels), ""]
    parts += ["### Missing points", "", missing_markdown(results), ""]
    return "\n".join(parts)


def shown_path(path: Path) -> str:
    """A path as the page names it: relative to the working folder when inside it (the command runs
    from the repository root), so the page does not name the machine's checkout."""
    path = Path(path)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            pass
    return path.as_posix()


def header_markdown(results_dir: Path, plan: ReferencePlan, arms: list[Arm], labels: dict[Arm, str],
                    verdicts: list[TaskVerdict]) -> str:
    """Title, provenance of the page, the plan and its completeness, the total compute."""
    points = [p for v in verdicts if v.results.group is not None for p in v.results.group.points]
    n_planned = len(plan.tasks) * plan.points_per_task
    shown = shown_path(results_dir)
    return "\n".join([
        "# Reference results: PDL against CE and its peers",
        "",
        f"<!-- Generated by `{COMMAND}` from {shown}; do not edit by hand. -->",
        (f"*Generated by `{MAKE_TARGET}` (`{COMMAND} --results-dir {shown}`) from the results tree `{shown}` "
         f"and its plan `{shown}/{PLAN_FILE}`. Do not edit by hand: rerun the command, which rebuilds this page "
         "and its figures byte for byte from the tree.*"),
        "",
        (f"Plan: tasks {', '.join(plan.tasks)}; arms {', '.join(f'`{labels[a]}`' for a in arms)} "
         f"(`{labels[arms[0]]}` is the baseline of every delta); seeds {plan.seeds_words([labels[a] for a in arms])}."),
        "",
        (f"**{len(points)} of {n_planned} planned points are complete.** Total compute: "
         f"{duration_text(compute_seconds(points))} (the sum of the recorded phase timings of the complete points)."),
    ])


def rules_markdown() -> str:
    """How the sentences are made, stated once on the page."""
    return (f"How to read the verdicts: Δ is arm − {BASELINE_LOSS} of the same seed, averaged over the seeds both "
            "ran, with its 95% paired-bootstrap CI over the test examples (docs/reporting.md). A difference the "
            "test resolves (\"raises\", \"lowers\", \"cost\", \"gain\") needs that CI to exclude 0 and, over several "
            "seeds, also the hierarchical CI that resamples seeds, with every seed's own delta of the same sign; "
            "otherwise the sentence names the seeds that disagree. A sentence names a length change when it is "
            f"resolved and above {LENGTH_CHANGE:.0%} of {BASELINE_LOSS}'s mean length (distinct-n rises as outputs "
            "shorten), and the empty and looping outputs where they differ. The main diversity metric is the first "
            f"of {', '.join(DIVERSITY_PREFERENCE)} that the task scores (rarefied distinct-2 does not rise as outputs "
            "shorten); "
            f"the main quality metric the first of {', '.join(QUALITY_PREFERENCE)} (BLEU where the task asks for the "
            "reference's wording, else ROUGE-L). The sampled decoding (nucleus p = 0.9, temperature 1, seeded by "
            "the point's seed) is read by the same rules. The likelihood sentence reads the teacher-forced NLL of "
            "the test reference tokens in the rarest and the most frequent 10% of training target mass (the "
            "rare-token profile's buckets), by the same CI rule; no decoding plays a part in it.")


def render_page(results_dir: Path, plan: ReferencePlan, arms: list[Arm], labels: dict[Arm, str],
                verdicts: list[TaskVerdict], figure_link: str) -> str:
    parts = [header_markdown(results_dir, plan, arms, labels, verdicts), "", "## Headline", "",
             markdown_table(headline_grid(verdicts, arms)), "", rules_markdown(), ""]
    parts += [task_markdown(v, plan, arms, figure_link) for v in verdicts]
    return "\n".join(parts).rstrip("\n") + "\n"


def figure_link(out: Path, figures_dir: Path) -> str:
    """The figures folder relative to the page, as a Markdown link path."""
    return Path(os.path.relpath(Path(figures_dir).resolve(), Path(out).resolve().parent)).as_posix()


@dataclass
class VerdictPage:
    out: Path
    figures: list[Path]
    planned: int
    complete: int
    verdicts: list[TaskVerdict]


def build_verdict(results_dir: Path, plan: ReferencePlan, out: Path, figures_dir: Path, *,
                  settings: TableSettings = PAGE_SETTINGS,
                  tokenizer_loader: TokenizerLoader | None = None) -> VerdictPage:
    """Write the verdict page `out` and its figures under `figures_dir` from the tree alone."""
    arms = planned_arms(plan)
    labels = arm_labels(arms)
    collection = read_tree(results_dir)
    verdicts = []
    for task in plan.tasks:
        verdict = judge_task(task_results(collection, task, plan, arms, labels), labels, settings, tokenizer_loader)
        verdict.figures = write_task_figures(verdict, figures_dir)
        verdicts.append(verdict)
    text = render_page(results_dir, plan, arms, labels, verdicts, figure_link(out, figures_dir))
    write_text_atomic(Path(out), text)
    complete = sum(len(v.results.group.points) for v in verdicts if v.results.group is not None)
    return VerdictPage(Path(out), [p for v in verdicts for p in v.figures.values()],
                       len(plan.tasks) * plan.points_per_task, complete, verdicts)
