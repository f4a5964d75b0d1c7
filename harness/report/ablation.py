"""The ablation page (docs/ablation.md): which of the official PDL code's choices break PDL.

The plan (results/reference/ablation.yaml) is a ladder between two ends, `pdl-official` (the
official trainer.py arithmetic) and `pdl(alpha=1)` (pdl's defaults); every other PDL arm flips one
of the choices where they differ (harness.losses.pdl.official_choices) and is placed on the ladder
from its options alone (`ladder`). Per task the page shows each arm's empty share, length, main
quality and diversity metrics, validation CE and the token weights it trained with, the paired
deltas against both ends, and one sentence per choice written by fixed rules from those numbers.

The page reads the same tree as the verdict page, through the same planning, table and sign rules
(harness.report.verdict, harness.report.tables), and is rebuilt byte for byte from the tree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.comparison import Comparison
from harness.errors import HarnessError
from harness.io import write_text_atomic
from harness.numbers import format_value
from harness.reference_plan import ABLATION_PLAN_FILE, ReferencePlan
from harness.render.cells import Grid, Row, delta_text, duration_text, mean_std_text
from harness.render.markdown import markdown_table, markdown_text
from harness.report.deltas import TokenizerLoader
from harness.report.tables import VALIDATION_CE, GroupTable, TableSettings, build_group_table
from harness.report.verdict import (
    DIVERSITY_PREFERENCE, PAGE_SETTINGS, QUALITY_PREFERENCE, Arm, TaskResults, figure_link, shown_path, ci_sign,
    compute_seconds, main_metric, missing_markdown, planned_arms, read_tree, resolved_arm, seed_disagreement, task_results,
)
from harness.reference_plan import ReferenceArm

COMMAND = "pdl-bench ablation"
MAKE_TARGET = "make ablation"
EMPTY, LENGTH = "empty-share", "mean-length"
LOOP, LIMIT = "loop-share", "limit-share"  # degenerate outputs that are not empty
DEGENERATION = ((LIMIT, "at the token limit"), (LOOP, "looping"))  # how degeneration_clause names each
FIGURE = "ablation_plane"
OFFICIAL, FIXED, FIX, BREAK, BASELINE = "official end", "pdl end", "fix", "put back", "baseline"


# ----------------------------------------------------------------- the ladder


@dataclass(frozen=True)
class Rung:
    """One planned arm's place on the ladder: an end, the baseline, or one choice flipped."""

    arm: Arm
    label: str
    role: str  # OFFICIAL, FIXED, FIX (official + one pdl default), BREAK (pdl + one official value), BASELINE
    choice: str | None = None  # the option flipped (FIX, BREAK)


def ladder(plan: ReferencePlan) -> list[Rung]:
    """Every planned arm as a Rung, in the plan's order, decided from its resolved options: the
    official options with exactly one choice at pdl's default is a fix, pdl's defaults with exactly
    one official value puts that choice back. Any other arm is an error, so the page never guesses."""
    from harness.losses.pdl import OFFICIAL_OPTIONS, official_choices

    choices = official_choices()
    official = json.loads(resolved_arm(ReferenceArm(loss="pdl", options=OFFICIAL_OPTIONS))[1])
    fixed = json.loads(resolved_arm(ReferenceArm(loss="pdl", options={"alpha": 1.0}))[1])
    rungs = []
    for arm in planned_arms(plan):
        loss, options = arm[0], json.loads(arm[1])
        if loss == "ce":
            rungs.append(Rung(arm, "ce", BASELINE))
        elif loss == "pdl-official":
            rungs.append(Rung(arm, "pdl-official", OFFICIAL))
        elif loss == "pdl" and options == fixed:
            rungs.append(Rung(arm, "pdl(alpha=1)", FIXED))
        else:
            from_official = [k for k in options if options[k] != official.get(k)]
            from_fixed = [k for k in options if options[k] != fixed.get(k)]
            if loss == "pdl" and len(from_official) == 1 and from_official[0] in choices:
                key = from_official[0]
                rungs.append(Rung(arm, f"official + {key}={options[key]}", FIX, key))
            elif loss == "pdl" and len(from_fixed) == 1 and from_fixed[0] in choices:
                key = from_fixed[0]
                rungs.append(Rung(arm, f"pdl + {key}={options[key]}", BREAK, key))
            else:
                raise HarnessError(f"ablation arm {loss} {options} is neither an end (pdl-official, pdl alpha=1) "
                                   f"nor one of the choices {', '.join(choices)} flipped alone",
                                   f"list only the ends and one-choice rungs in {ABLATION_PLAN_FILE}")
    roles = [r.role for r in rungs]
    if roles.count(OFFICIAL) != 1 or roles.count(FIXED) != 1 or rungs[0].role != BASELINE:
        raise HarnessError(f"the ablation plan needs ce first and both ends once (pdl-official and pdl alpha=1); "
                           f"it has {', '.join(r.label for r in rungs)}",
                           f"fix the arms of {ABLATION_PLAN_FILE}")
    ends = [plan.arm_seeds(roles.index(role)) for role in (OFFICIAL, FIXED)]
    short = [f"{r.label} seed {seed}" for i, r in enumerate(rungs) for seed in plan.arm_seeds(i)
             if any(seed not in seeds for seeds in ends)]
    if short:
        raise HarnessError(f"every rung is compared with both ends of the same seed, but {', '.join(short)} "
                           "has no such end point planned", f"give both ends every rung's seeds in {ABLATION_PLAN_FILE}")
    return rungs


def end(rungs: list[Rung], role: str) -> Rung:
    return next(r for r in rungs if r.role == role)


def rung_of(rungs: list[Rung], role: str, choice: str) -> Rung | None:
    return next((r for r in rungs if r.role == role and r.choice == choice), None)


# ----------------------------------------------------------------- one task


@dataclass
class AblationTask:
    """One task: its planned points, the main metrics, and the table against each end."""

    results: TaskResults
    quality: str | None = None
    diversity: str | None = None
    metrics: list[str] = field(default_factory=list)  # the page's metrics, in column order
    against: dict[str, GroupTable] = field(default_factory=dict)  # end role -> table with deltas vs that end

    def row(self, metric: str | None, rung: Rung, against: str) -> Comparison | None:
        table = self.against.get(against)
        if table is None or metric is None:
            return None
        label = table.group.labels().get(rung.arm)  # None: the rung has no complete point yet
        return next((r for r in table.rows if r.metric == metric and r.arm.label == label), None)

    def points(self, rung: Rung) -> dict:
        """seed -> the rung's complete point (none while the task has no point at all)."""
        group = self.results.group
        return group.points_of(rung.arm) if group is not None else {}

    def weights(self, rung: Rung) -> dict | None:
        """The token weights the rung trained with (provenance.loss_weights of its lowest seed that
        recorded them): the frequencies are counted on the training split, which the task's
        `limits.seed` fixes for every run seed, so every seed trains with the same weights."""
        points = self.points(rung)
        return next((points[s].provenance.get("loss_weights") for s in sorted(points)
                     if points[s].provenance.get("loss_weights")), None)

    def smallest_grad_norm(self, rung: Rung) -> float | None:
        """The smallest pre-clip gradient norm any seed of the rung logged (train_log.jsonl). Above
        the task's max_grad_norm, every logged step was clipped to that norm: the loss's overall
        scale, which is what `normalization` changes with one micro-batch per step, is divided out."""
        norms = [float(row["grad_norm"]) for point in self.points(rung).values() for row in point.train_log()
                 if isinstance(row.get("grad_norm"), (int, float)) and math.isfinite(row["grad_norm"])]
        return min(norms) if norms else None

    def training_setting(self, key: str):
        """A training setting (e.g. max_grad_norm) every point of the task shares, else None."""
        group = self.results.group
        values = {json.dumps(p.config["task"]["training"].get(key)) for p in group.points} if group is not None else set()
        return json.loads(values.pop()) if len(values) == 1 else None

    def outputs(self, rung: Rung) -> dict[int, tuple[str, ...]]:
        """seed -> the rung's greedy outputs, in test order."""
        return {seed: tuple(row["prediction"] for row in point.generations())
                for seed, point in self.points(rung).items()}


def ablation_metrics(group_metrics: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(quality, diversity, the page's metrics): the verdict page's main metrics, raw distinct-2
    beside rarefied distinct-2, which an arm with (nearly) empty outputs leaves undefined, and the
    loop and limit shares, which a quality or diversity change beside them may be explained by."""
    quality = main_metric(QUALITY_PREFERENCE, group_metrics)
    diversity = main_metric(DIVERSITY_PREFERENCE, group_metrics)
    names = [EMPTY, LOOP, LIMIT, LENGTH, quality, diversity, "distinct-2", VALIDATION_CE]
    return quality, diversity, [n for n in dict.fromkeys(names) if n and (n in group_metrics or n == VALIDATION_CE)]


def judge_ablation_task(results: TaskResults, rungs: list[Rung], settings: TableSettings,
                        tokenizer_loader: TokenizerLoader | None) -> AblationTask:
    group = results.group
    task = AblationTask(results)
    if group is None or not group.points:
        return task
    task.quality, task.diversity, names = ablation_metrics(group.metric_list())
    if not any(p.metrics.get("validation_ce") is not None for p in group.points):
        names = [n for n in names if n != VALIDATION_CE]  # a task without a validation split
    task.metrics = names
    present = {p.arm for p in group.points}
    for role in (FIXED, OFFICIAL):
        anchor = end(rungs, role).arm
        if anchor in present:
            chosen = TableSettings(n_boot=settings.n_boot, bootstrap_seed=settings.bootstrap_seed, metrics=tuple(names),
                                   workers=settings.workers)
            task.against[role] = build_group_table(group, chosen, tokenizer_loader, baseline=anchor)
    return task


# ----------------------------------------------------------------- sentences


def percent(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def mean_of(row: Comparison | None) -> float | None:
    return None if row is None or not row.arm.measured else row.arm.mean


def paired_baseline(row: Comparison | None) -> float | None:
    """The end's mean over the seeds the row's delta pairs, put beside the rung's value: the end's own
    mean (row.baseline) covers every seed it ran, more than a rung has while its seeds still run."""
    return None if row is None else row.paired_baseline


def weight_words(weights: dict | None) -> str:
    """` (EOS weight 1e+07; largest 1e+07 on '<|im_end|>')`, from provenance.loss_weights."""
    if not weights:
        return ""
    token = f" on {weights['max_token']!r}" if weights.get("max_token") else ""
    largest = f"largest {format_value(weights['max'], 3)}{token}"
    eos = f"EOS weight {format_value(weights['eos'], 3)}; " if weights.get("eos") is not None else ""
    return f" ({eos}{largest})"


def better_sign(row: Comparison | None) -> int:
    """+1 when the row's resolved change (ci_sign) is for the better, -1 for the worse, 0 otherwise."""
    if row is None or row.higher_is_better is None:
        return 0
    return ci_sign(row) * (1 if row.higher_is_better else -1)


def seeds_note(*rows: Comparison | None) -> str:
    """Why a delta the test examples resolve is not called a change (verdict.seed_disagreement)."""
    return "".join(seed_disagreement(row) for row in rows if row is not None)


def degenerate_rows(task: AblationTask, rung: Rung) -> list[tuple[Comparison, str]]:
    """(row against pdl(alpha=1), words) for each non-empty degeneration (DEGENERATION) the test
    examples resolve above pdl(alpha=1)'s: the outputs that are there but broken."""
    rows = [(task.row(metric, rung, FIXED), words) for metric, words in DEGENERATION]
    return [(row, words) for row, words in rows if row is not None and ci_sign(row) > 0]


def degeneration_clause(task: AblationTask, rung: Rung, fixed: Rung) -> str:
    """`; outputs 88% at the token limit (pdl(alpha=1): 2%) and 85% looping (pdl(alpha=1): 1%)`, so
    that a quality or diversity change is read beside what may explain it; "" when none is resolved."""
    parts = [f"{percent(mean_of(row))} {words} ({fixed.label}: {percent(paired_baseline(row))})"
             for row, words in degenerate_rows(task, rung)]
    return f"; outputs {' and '.join(parts)}" if parts else ""


def has_outputs(task: AblationTask, rung: Rung) -> bool:
    """Whether any of the rung's outputs is not empty: an all-empty arm's length and quality say nothing more."""
    share = mean_of(task.row(EMPTY, rung, FIXED))
    return share is not None and share < 1


def shorter_clause(task: AblationTask, rung: Rung, fixed: Rung) -> str:
    """`; outputs average 1.13 words (pdl(alpha=1): 8.38)` when the test resolves the rung's outputs
    as shorter than pdl(alpha=1)'s: outputs cut to a word or two are not empty, but not back either
    (longer ones are named by the token-limit share)."""
    row = task.row(LENGTH, rung, FIXED)
    if row is None or ci_sign(row) >= 0 or not has_outputs(task, rung):
        return ""
    length = format_value(mean_of(row), 3)
    return (f"; outputs average {length} {'word' if length == '1' else 'words'} "
            f"({fixed.label}: {format_value(paired_baseline(row), 3)})")


def put_back_sentence(task: AblationTask, rungs: list[Rung], choice: str) -> str:
    """What putting one official choice back into pdl does to the empty share and quality, against
    pdl(alpha=1): each change named only when ci_sign resolves it, in its own direction."""
    rung, fixed = rung_of(rungs, BREAK, choice), end(rungs, FIXED)
    empty, quality = task.row(EMPTY, rung, FIXED), task.row(task.quality, rung, FIXED)
    head = f"putting `{rung.label.removeprefix('pdl + ')}` back alone"
    if empty is None:
        return f"{head}: not compared yet (points missing)."
    share, base = percent(mean_of(empty)), percent(paired_baseline(empty))
    changes = []
    if ci_sign(empty) > 0:
        changes.append(f"empties {share} of outputs ({fixed.label}: {base})")
    elif ci_sign(empty) < 0:
        changes.append(f"lowers the empty share to {share} ({fixed.label}: {base})")
    if better_sign(quality):
        changes.append(f"{'improves' if better_sign(quality) > 0 else 'costs'} {task.quality} {delta_text(quality)}")
    if changes:
        text = f"{head} {' and '.join(changes)}"
    else:
        quality_text = f"{task.quality} {delta_text(quality)}" if quality is not None else "no quality metric"
        text = (f"{head} changes neither the empty share ({share}) nor {task.quality} by a difference the test "
                f"resolves ({quality_text})")
    return (text + seeds_note(empty, quality) + degeneration_clause(task, rung, fixed) + shorter_clause(task, rung, fixed)
            + weight_words(task.weights(rung)) + ".")


def fix_sentence(task: AblationTask, rungs: list[Rung], choice: str) -> str:
    """What fixing one choice alone in the official arithmetic does to the empty share, against
    pdl-official; "restores outputs" only when nothing is resolved worse than pdl(alpha=1): not the
    empty share, not the quality metric, not the shares at the token limit or looping. A fix that
    brings the empty share down without that says which of the last two it leaves worse; every
    branch names the degenerate shares (degeneration_clause), as the headline does, and, where some
    outputs are there, the quality change and outputs resolved shorter (shorter_clause)."""
    rung, official, fixed = rung_of(rungs, FIX, choice), end(rungs, OFFICIAL), end(rungs, FIXED)
    empty, against_fixed = task.row(EMPTY, rung, OFFICIAL), task.row(EMPTY, rung, FIXED)
    head = f"fixing `{choice}` alone (`{rung.label.removeprefix('official + ')}`)"
    if empty is None:
        return f"{head}: not compared yet (points missing)."
    share, base = percent(mean_of(empty)), percent(paired_baseline(empty))
    fixed_share = percent(paired_baseline(against_fixed))
    compared_with_fixed = against_fixed is not None and against_fixed.delta is not None
    degenerate = degeneration_clause(task, rung, fixed)  # outputs that are there, but broken
    quality = task.row(task.quality, rung, FIXED)
    quality_text = (f"; {task.quality} {delta_text(quality)} against {fixed.label}" + seeds_note(quality)
                    if quality is not None and quality.delta is not None and has_outputs(task, rung) else "")
    if ci_sign(empty) >= 0:
        text = f"{head} leaves {share} of outputs empty ({official.label}: {base})" + seeds_note(empty) + quality_text
    elif not compared_with_fixed:  # "restores" needs the comparison with the other end too
        text = (f"{head} lowers the empty share to {share} ({official.label}: {base}); not compared with "
                f"{fixed.label} yet (points missing)")
    elif ci_sign(against_fixed) <= 0:
        worse = ([f"costs {task.quality}"] if better_sign(quality) < 0 else []) + \
                ([f"more outputs degenerate than under {fixed.label}"] if degenerate else [])
        verb = (f"brings the empty share down to {fixed.label}'s, but {' and '.join(worse)}" if worse
                else "restores outputs")
        text = f"{head} {verb}: {share} empty against {official.label}'s {base} ({fixed.label}: {fixed_share}){quality_text}"
    else:
        text = (f"{head} lowers the empty share to {share} ({official.label}: {base}), still above "
                f"{fixed.label}'s {fixed_share}" + quality_text)
    return text + degenerate + shorter_clause(task, rung, fixed) + weight_words(task.weights(rung)) + "."


def choice_lines(task: AblationTask, rungs: list[Rung]) -> list[str]:
    from harness.losses.pdl import official_choices

    lines = []
    for choice in official_choices():
        parts = []
        if rung_of(rungs, BREAK, choice):
            parts.append(put_back_sentence(task, rungs, choice))
        if rung_of(rungs, FIX, choice):
            parts.append(fix_sentence(task, rungs, choice))
        if parts:
            lines.append(f"`{choice}`: " + " ".join(p[0].upper() + p[1:] for p in parts))
    return lines


def same_output_groups(task: AblationTask, rungs: list[Rung]) -> list[tuple[list[Rung], list[int]]]:
    """Arms whose outputs are identical, example for example, at every seed they share (at least
    one), with those seeds: two choices that train the same model in effect. Arms that leave every
    output empty are left out: the empty share already says they agree."""
    groups: list[list[tuple[Rung, dict[int, tuple[str, ...]]]]] = []  # each member with its outputs
    for rung in rungs:
        outputs = task.outputs(rung)
        if not outputs or all(not text for texts in outputs.values() for text in texts):
            continue
        for members in groups:
            first = members[0][1]
            shared = set(first) & set(outputs)
            if shared and all(first[s] == outputs[s] for s in shared):
                members.append((rung, outputs))
                break
        else:
            groups.append([(rung, outputs)])
    return [([rung for rung, _ in members], sorted(set.intersection(*(set(outputs) for _, outputs in members))))
            for members in groups if len(members) > 1]


def same_output_sentence(task: AblationTask, members: list[Rung], seeds: list[int]) -> str:
    """One sentence for one group of same_output_groups, naming whether their recorded weights agree."""
    labels = [f"`{m.label}`" for m in members]
    names = f"{', '.join(labels[:-1])} and {labels[-1]}"
    seed_words = ", ".join(map(str, seeds)) if seeds else "none in common"
    weights = [task.weights(m) for m in members]
    same_weights = all(w == weights[0] for w in weights) and weights[0] is not None
    tail = f", and recorded the same token weights{weight_words(weights[0])}: the same model in effect" if same_weights else ""
    return f"{names} give identical outputs on every test example at every seed they share ({seed_words}){tail}."


# ----------------------------------------------------------------- tables


def _cell(row: Comparison | None) -> str:
    return mean_std_text(row.arm) if row is not None and row.arm.measured else ""


def clipping_note(task: AblationTask) -> str:
    """What the grad-norm column means for this task's clipping and accumulation settings."""
    note = "The last column is the smallest pre-clip gradient norm any seed logged (train_log.jsonl)"
    clip, accumulation = task.training_setting("max_grad_norm"), task.training_setting("gradient_accumulation_steps")
    if clip is None:
        return note + "."
    note += f"; gradients were clipped at {format_value(clip, 3)} (training.max_grad_norm), so an arm above it had every logged step clipped"
    if accumulation == 1:
        note += (", and with one micro-batch per step its loss's overall scale, which is all `normalization` changes "
                 "there, is divided out")
    return note + "."


def values_grid(task: AblationTask, rungs: list[Rung]) -> Grid:
    """arm | role | seeds | each metric's mean ± std | the token weights it trained with."""
    metrics = _metrics(task)
    rows = []
    for rung in rungs:
        row = [task.row(m, rung, FIXED) or task.row(m, rung, OFFICIAL) for m in metrics]
        seeds = next((r.arm.n_seeds for r in row if r is not None), 0)
        weights = task.weights(rung) or {}
        rows.append(Row([f"`{rung.label}`", rung.role, str(seeds), *[_cell(r) for r in row],
                         format_value(weights.get("max"), 3), format_value(weights.get("eos"), 3),
                         format_value(task.smallest_grad_norm(rung), 3)]))
    headers = ["arm", "role", "seeds", *metrics, "largest weight", "EOS weight", "smallest logged grad norm"]
    return Grid(headers, [False, False, True] + [True] * (len(metrics) + 3), rows)


def delta_grid(task: AblationTask, rungs: list[Rung], against: str) -> Grid:
    """arm | Δ [95% CI] per metric against one end (validation CE: the mean paired difference)."""
    metrics = _metrics(task)
    rows = []
    for rung in rungs:
        if rung.role in (against, BASELINE):
            continue
        cells = [task.row(m, rung, against) for m in metrics]
        rows.append(Row([f"`{rung.label}`", *[delta_text(c) if c is not None and c.delta is not None else ""
                                               for c in cells]]))
    return Grid(["arm", *[f"Δ {m}" for m in metrics]], [False] + [True] * len(metrics), rows)


def _metrics(task: AblationTask) -> list[str]:
    table = next(iter(task.against.values()), None)
    if table is None:
        return []
    shown = set(table.main["metric"])
    return [m for m in task.metrics if m in shown]


# ----------------------------------------------------------------- the figure


def plane_figure(tasks: list[AblationTask], rungs: list[Rung]):
    """Per task, each arm on the quality-diversity plane (mean ± std over seeds), the two ends
    marked; arms drawn at the same place (the same model in effect) share one label, one name a
    line, so the names stay legible; an arm whose diversity is undefined (too few n-grams) is named
    under the panel."""
    from matplotlib.figure import Figure

    drawn = [t for t in tasks if t.against.get(FIXED) is not None and t.quality and t.diversity]
    if not drawn:
        return None
    fig = Figure(figsize=(5.2 * len(drawn), 4.8), layout="constrained")
    axes = fig.subplots(1, len(drawn), squeeze=False).ravel()
    style = {OFFICIAL: ("*", "tab:red", 14), FIXED: ("s", "tab:blue", 9), BASELINE: ("o", "black", 8),
             FIX: ("^", "tab:orange", 8), BREAK: ("v", "tab:green", 8)}
    for ax, task in zip(axes, drawn):
        undefined, names_at = [], {}
        for rung in rungs:
            x, y = task.row(task.diversity, rung, FIXED), task.row(task.quality, rung, FIXED)
            if y is None:  # no complete point yet
                continue
            if x is None or not (x.arm.measured and math.isfinite(x.arm.mean)):  # no finite value at any seed
                undefined.append(rung.label)
                continue
            marker, color, size = style[rung.role]
            ax.errorbar([x.arm.mean], [y.arm.mean], xerr=[x.arm.std or 0.0], yerr=[y.arm.std or 0.0], marker=marker,
                        color=color, markersize=size, capsize=3, linestyle="none")
            names_at.setdefault((x.arm.mean, y.arm.mean), []).append(rung.label)
        for place, names in names_at.items():
            ax.annotate("\n".join(names), place, fontsize=6, xytext=(4, 3), textcoords="offset points",
                        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0},
                        zorder=1.5)  # under the markers, which must stay visible
        ax.set_title(task.results.task, fontsize=10)
        ax.set_xlabel(f"{task.diversity} (higher = more diverse)")
        ax.set_ylabel(task.quality)
        ax.grid(alpha=0.3)
        if undefined:
            ax.text(0.02, 0.02, "not placed (diversity undefined):\n" + "\n".join(undefined), fontsize=6,
                    transform=ax.transAxes, va="bottom")
    fig.suptitle("Ablation arms on the quality-diversity plane (mean ± std over seeds): star pdl-official, "
                 "square pdl(alpha=1), triangles up: one fix in official, down: one official choice in pdl",
                 fontsize=9)
    return fig


# ----------------------------------------------------------------- the page


def headline_grid(tasks: list[AblationTask], rungs: list[Rung]) -> Grid:
    """choice | task | empty share with the official value put back into pdl | with the choice fixed alone
    in official: the two numbers that say whether a choice breaks PDL, each followed by the shares of
    outputs at the token limit or looping where those are resolved above pdl(alpha=1)'s (an output
    that is there is not yet a good one)."""
    from harness.losses.pdl import official_choices

    rows = []
    for choice, (official_value, default) in official_choices().items():
        for task in tasks:
            cells = []
            for role in (BREAK, FIX):
                rung = rung_of(rungs, role, choice)
                anchor = FIXED if role == BREAK else OFFICIAL
                empty = task.row(EMPTY, rung, anchor) if rung else None
                broken = "".join(f"; {percent(mean_of(row))} {words}" for row, words in degenerate_rows(task, rung)) if rung else ""
                cells.append("not compared yet" if empty is None else f"{percent(mean_of(empty))} ({delta_text(empty)}){broken}")
            rows.append(Row([f"`{choice}`", task.results.task, *cells]))
    headers = ["choice", "task", "empty share, official value put back into pdl (Δ vs pdl(alpha=1)); degenerate shares",
               "empty share, pdl default alone in official (Δ vs pdl-official); degenerate shares"]
    return Grid(headers, [False, False, True, True], rows)


def choices_grid() -> Grid:
    from harness.losses.pdl import PDLConfig, official_choices

    rows = [Row([f"`{name}`", str(official), str(default), markdown_text(PDLConfig.model_fields[name].description)])
            for name, (official, default) in official_choices().items()]
    return Grid(["option", "official", "pdl default", "what it sets"], [False] * 4, rows)


def task_section(task: AblationTask, rungs: list[Rung], plan: ReferencePlan) -> str:
    group = task.results.group
    done = len(group.points) if group is not None else 0
    parts = [f"## {task.results.task}", "", f"{done} of {plan.points_per_task} planned points complete"
             + (f"; compute {duration_text(compute_seconds(group.points))}." if done else "."), ""]
    if not task.against:
        parts += ["No comparison yet: an end of the ladder has no complete point.", ""]
    else:
        parts += [f"Main metrics: quality `{task.quality}`, diversity `{task.diversity}` (as on docs/results.md).", ""]
        parts += [f"- {line}" for line in choice_lines(task, rungs)] + [""]
        same = [same_output_sentence(task, members, seeds) for members, seeds in same_output_groups(task, rungs)]
        parts += [f"Same outputs: {' '.join(same)}", ""] if same else []
        parts += ["### Arms (mean ± std over seeds)", "", markdown_table(values_grid(task, rungs)), "",
                  clipping_note(task), ""]
        for role, title in ((FIXED, "pdl(alpha=1)"), (OFFICIAL, "pdl-official")):
            if role in task.against:
                notes = " ".join(task.against[role].notes)
                parts += [f"### Δ against {title} (95% paired-bootstrap CI over test examples, averaged over seeds)",
                          "", markdown_table(delta_grid(task, rungs, role)), ""] + ([notes, ""] if notes else [])
    parts += ["### Missing points", "", missing_markdown(task.results), ""]
    return "\n".join(parts)


def render_ablation(results_dir: Path, plan: ReferencePlan, rungs: list[Rung], tasks: list[AblationTask],
                    figure: str | None) -> str:
    from harness.losses.pdl import official_choices

    shown = shown_path(results_dir)
    points = [p for t in tasks if t.results.group is not None for p in t.results.group.points]
    planned = len(plan.tasks) * plan.points_per_task
    parts = [
        "# PDL ablation: which of the official code's choices break it", "",
        f"<!-- Generated by `{COMMAND}` from {shown}; do not edit by hand. -->",
        (f"*Generated by `{MAKE_TARGET}` (`{COMMAND} --results-dir {shown}`) from the results tree `{shown}` and "
         f"its plan `{shown}/{ABLATION_PLAN_FILE}`; rebuilt byte for byte from the tree.*"), "",
        ("`pdl-official` applies the official trainer.py arithmetic (the verdict page, docs/results.md, shows "
         "what it does to the outputs); `pdl(alpha=1)` is the same decay with pdl's defaults. They differ in "
         f"the {len(official_choices())} choices below. Each rung between them flips one choice alone: `official + X` fixes X in the "
         "official arithmetic, `pdl + X` puts the official X back into pdl. The ends and ce are the verdict "
         "page's own points (the same identity): each is run once and read by both pages."), "",
        markdown_table(choices_grid()), "",
        (f"Tasks {', '.join(plan.tasks)}; seeds {plan.seeds_words([r.label for r in rungs])}. "
         f"**{len(points)} of {planned} planned points are complete.** Total compute: "
         f"{duration_text(compute_seconds(points))} (the sum of the recorded phase timings)."), "",
        "## Headline", "", markdown_table(headline_grid(tasks, rungs)), "",
        ("How to read it: Δ is paired per seed and test example and averaged over seeds, with its 95% bootstrap CI; "
         "a sentence says \"empties\", \"costs\" or \"restores\" only by the verdict page's rule (the CI excludes 0, "
         "and over several seeds the seed-level CI too, with every seed's delta of the same sign). \"Degenerate "
         "shares\" are the outputs at the token limit (`limit-share`) or looping (`loop-share`), named where that rule "
         "puts them above pdl(alpha=1)'s: a fix that leaves them, or costs quality, \"brings the empty share down\", "
         "it does not \"restore\" outputs. "
         "The weights are "
         "those the loss gave the training targets' token ids before the first update (provenance.loss_weights): "
         "under batch_weight_sum only their ratios matter."), "",
    ]
    if figure:
        parts += [f"![quality-diversity plane]({figure})", "", "*Each arm on the task's quality-diversity plane "
                  "(mean ± std over seeds).*", ""]
    parts += [task_section(t, rungs, plan) for t in tasks]
    return "\n".join(parts).rstrip("\n") + "\n"


@dataclass
class AblationPage:
    out: Path
    figures: list[Path]
    planned: int
    complete: int


def ablation_tasks(results_dir: Path, plan: ReferencePlan, rungs: list[Rung], settings: TableSettings,
                   tokenizer_loader: TokenizerLoader | None = None) -> list[AblationTask]:
    """Each planned task's rungs read from the tree and judged: what the page and its figure show."""
    arms = [r.arm for r in rungs]
    labels = {r.arm: r.label for r in rungs}
    collection = read_tree(results_dir)
    return [judge_ablation_task(task_results(collection, task, plan, arms, labels, plan_file=ABLATION_PLAN_FILE),
                                rungs, settings, tokenizer_loader) for task in plan.tasks]


def build_ablation(results_dir: Path, plan: ReferencePlan, out: Path, figures_dir: Path, *,
                   settings: TableSettings = PAGE_SETTINGS,
                   tokenizer_loader: TokenizerLoader | None = None) -> AblationPage:
    """Write the ablation page `out` and its figure under `figures_dir` from the tree alone."""
    from harness.report import plots

    rungs = ladder(plan)
    tasks = ablation_tasks(results_dir, plan, rungs, settings, tokenizer_loader)
    fig, stem = plane_figure(tasks, rungs), Path(figures_dir) / FIGURE
    figures, link = [], None
    if fig is not None:
        figures = plots.save_figure(fig, stem, formats=("png",))
        link = f"{figure_link(out, figures_dir)}/{figures[0].name}"
    else:
        stem.with_name(f"{FIGURE}.png").unlink(missing_ok=True)
    write_text_atomic(Path(out), render_ablation(results_dir, plan, rungs, tasks, link))
    complete = sum(len(t.results.group.points) for t in tasks if t.results.group is not None)
    return AblationPage(Path(out), figures, len(plan.tasks) * plan.points_per_task, complete)
