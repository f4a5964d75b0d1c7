"""Per-group tables: each metric's mean ± std over seeds per arm, and the paired delta against CE.

Delta intervals (docs/reporting.md):
- one seed: the ordinary paired bootstrap of `harness.metrics.compare` (same resampled test
  examples for both arms);
- several seeds: one resample-index matrix over the test examples is shared by every seed (the
  test set is the same for all seeds); on each resample every seed's delta (arm - CE of the same
  seed) is recomputed and the deltas are averaged over seeds. The percentile interval and the
  paired-bootstrap p-value of that seed-averaged delta then follow harness/stats.py. This measures
  test-set sampling noise of the seed-averaged effect; the ± std column shows seed-to-seed spread.
Means and stds come from each point's metrics.json; deltas are recomputed from generations.jsonl
(and train_counts.npy plus the model's tokenizer for rare-token metrics), so no model is loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from harness import stats
from harness.errors import HarnessError
from harness.io import write_text_atomic
from harness.report.collect import Collection, Group, Missing, Point, group_stems

VALIDATION_CE = "validation-ce"  # plain token cross-entropy on the validation split (every arm)
TokenizerLoader = Callable[[str], Any]


@dataclass(frozen=True)
class TableSettings:
    n_boot: int = 1000
    bootstrap_seed: int = 0
    metrics: tuple[str, ...] | None = None  # None: every metric the points report
    deltas: bool = True  # False: means and stds only (no generations read, no bootstrap)
    trust_remote_code: bool = False  # for the tokenizer the rare-token deltas load


@dataclass
class GroupTable:
    group: Group
    main: pd.DataFrame  # one row per (metric, arm); tidy numbers, see ROW_COLUMNS
    ablation: pd.DataFrame | None  # one row per arm of a loss whose options vary beyond alpha
    notes: list[str] = field(default_factory=list)  # footnotes: skipped metrics, unpaired arms


ROW_COLUMNS = [
    "task", "model", "budget", "group", "metric", "higher_is_better", "arm", "loss", "alpha", "options",
    "mean", "std", "n_seeds", "seeds", "n_examples", "delta", "ci_low", "ci_high", "p_value", "delta_seeds",
    "best",
]


def metric_order(names: set[str] | list[str]) -> list[str]:
    """The suite's order (ROUGE, diversity, length, rare tokens), unknown names after, CE last."""
    from harness.metrics import DEFAULT_METRICS, RARE_TOKEN_METRICS

    known = [*DEFAULT_METRICS, "self-bleu", *RARE_TOKEN_METRICS]
    rank = {name: i for i, name in enumerate(known)}
    return sorted(names, key=lambda n: (n == VALIDATION_CE, rank.get(n, len(known)), n))


def default_tokenizer_loader(model: str, trust_remote_code: bool = False):
    from harness.models import load_tokenizer

    return load_tokenizer(model, trust_remote_code=trust_remote_code)


# ----------------------------------------------------------------- paired deltas


def seed_averaged_compare(runs: list[tuple[list[str], list[str], list[str], Any]], metrics: list[str], *,
                          n_boot: int, seed: int) -> dict[str, Any]:
    """B - A averaged over seeds, with one resample of test examples shared by every seed.

    `runs` holds (predictions_a, predictions_b, references, MetricContext) per seed, all on the same
    test examples in the same order. With a single run this equals `harness.metrics.compare`.
    """
    from harness.metrics import Batch
    from harness.metrics.suite import estimates, paired_result, resolve_metrics

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


class _DeltaComputer:
    """Paired deltas of every arm against the CE arm of the same seed, for one group."""

    def __init__(self, group: Group, settings: TableSettings, tokenizer_loader: TokenizerLoader | None):
        self.group = group
        self.settings = settings
        self.loader = tokenizer_loader or partial(default_tokenizer_loader,
                                                  trust_remote_code=settings.trust_remote_code)
        self.notes: list[str] = []
        self._rows: dict[Path, list[dict]] = {}
        self._tokenize: Any = None
        self._tokenizer_error: str | None = None

    def rows(self, point: Point) -> list[dict]:
        if point.path not in self._rows:
            self._rows[point.path] = point.generations()
        return self._rows[point.path]

    def tokenize(self):
        """The model's tokenizer as str -> ids, or None (with the reason kept for the footnote)."""
        if self._tokenize is None and self._tokenizer_error is None:
            try:
                from harness.metrics import token_ids_fn

                tokenizer = self.loader(self.group.model)
                self._tokenize = token_ids_fn(tokenizer)
            except (HarnessError, OSError, ValueError, ImportError) as err:
                self._tokenizer_error = str(err).splitlines()[0]
        return self._tokenize

    def usable_metrics(self, names: list[str], counts_ok: bool) -> list[str]:
        """Registered metrics whose needs can be met; the rest are named in a footnote."""
        from harness.metrics import METRICS

        usable, no_context, unknown = [], [], []
        for name in names:
            if name not in METRICS:
                unknown.append(name)
                continue
            needs = METRICS.get(name).needs
            if "tokenize" in needs and self.tokenize() is None:
                no_context.append(name)
            elif "train_counts" in needs and not counts_ok:
                no_context.append(name)
            else:
                usable.append(name)
        if no_context:
            why = (f"the tokenizer of {self.group.model} could not be loaded ({self._tokenizer_error})"
                   if self._tokenizer_error else "train_counts.npy is missing")
            self._note(f"no delta CI for {', '.join(no_context)}: {why}.")
        if unknown:
            self._note(f"no delta CI for {', '.join(unknown)}: not a registered metric in this version.")
        return usable

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def compare(self, arm, baseline, names: list[str], labels) -> tuple[dict[str, Any], list[int]]:
        from harness.metrics import MetricContext, compare

        arm_points, base_points = self.group.points_of(arm), self.group.points_of(baseline)
        seeds = sorted(set(arm_points) & set(base_points))
        if not seeds:
            self._note(f"{labels[arm]}: no CE run with the same seed, so no paired delta.")
            return {}, []
        for seed in seeds:
            differs = [key for key in ("init_hash", "data_order_hash")
                       if base_points[seed].provenance.get(key) != arm_points[seed].provenance.get(key)]
            if differs:
                self._note(f"{labels[arm]} seed {seed}: {' and '.join(differs)} differ from CE's, so the arms "
                           "are not strictly paired.")
        runs, ids = [], None
        counts = [base_points[s].train_counts() for s in seeds]
        names = self.usable_metrics(names, counts_ok=all(c is not None for c in counts))
        if not names:
            return {}, seeds
        for seed, train_counts in zip(seeds, counts):
            rows_a, rows_b = self.rows(base_points[seed]), self.rows(arm_points[seed])
            keys_a = [(r["id"], r["reference"]) for r in rows_a]
            if keys_a != [(r["id"], r["reference"]) for r in rows_b] or (ids is not None and keys_a != ids):
                self._note(f"{labels[arm]}: generations cover other test examples (ids or references) than CE, "
                           "so no paired delta.")
                return {}, seeds
            ids = keys_a
            context = MetricContext(train_counts=train_counts, tokenize=self._tokenize)
            runs.append(([r["prediction"] for r in rows_a], [r["prediction"] for r in rows_b],
                         [r["reference"] for r in rows_a], context))
        s = self.settings
        if len(runs) == 1:
            preds_a, preds_b, refs, context = runs[0]
            result = compare(preds_a, preds_b, refs, metrics=names, context=context,
                             n_boot=s.n_boot, seed=s.bootstrap_seed)
        else:
            result = seed_averaged_compare(runs, names, n_boot=s.n_boot, seed=s.bootstrap_seed)
        return result, seeds


# ----------------------------------------------------------------- building the frames


def _metric_values(points: dict[int, Point], name: str) -> tuple[list[float], int | None, bool | None]:
    """The metric's value per seed, its n, and its direction, from metrics.json."""
    values, n, direction = [], None, None
    for point in points.values():
        if name == VALIDATION_CE:
            value = point.metrics.get("validation_ce")
            direction = False
        else:
            record = point.metric(name) or {}
            value, n = record.get("value"), record.get("n", n)
            direction = record.get("higher_is_better", direction)
        if value is not None and math.isfinite(float(value)):
            values.append(float(value))
    return values, n, direction


def _report_metrics(group: Group, settings: TableSettings) -> list[str]:
    names = {name for p in group.points for name in p.metrics.get("metrics", {})}
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
                      tokenizer_loader: TokenizerLoader | None = None) -> GroupTable:
    """Means, stds and paired deltas vs CE for every (metric, arm) of one group."""
    names = _report_metrics(group, settings)
    arms, labels, baseline = group.arms(), group.labels(), group.baseline()
    computer = _DeltaComputer(group, settings, tokenizer_loader)
    deltas: dict[tuple, tuple[dict, list[int]]] = {}
    if baseline is None:
        computer.notes.append("no CE arm in this group, so no deltas.")
    elif settings.deltas:
        bootstrapped = [n for n in names if n != VALIDATION_CE]
        for arm in arms:
            if arm != baseline and bootstrapped:
                deltas[arm] = computer.compare(arm, baseline, bootstrapped, labels)
    rows = []
    budget = group.budget()
    for name in names:
        for arm in arms:
            points = group.points_of(arm)
            values, n, direction = _metric_values(points, name)
            if not values:
                continue
            summary = stats.across_seeds(values)
            row = {
                "task": group.task, "model": group.model, "budget": budget, "group": group.key,
                "metric": name, "higher_is_better": direction, "arm": labels[arm], "loss": arm[0],
                "alpha": json.loads(arm[1]).get("alpha"), "options": arm[1],
                "mean": summary.mean, "std": summary.std, "n_seeds": summary.n,
                "seeds": ",".join(str(s) for s in sorted(points)), "n_examples": n,
                "delta": None, "ci_low": None, "ci_high": None, "p_value": None, "delta_seeds": None,
            }
            result, seeds = deltas.get(arm, ({}, []))
            if name in result:
                r = result[name]
                row.update(delta=r.delta, ci_low=_finite(r.ci_low), ci_high=_finite(r.ci_high),
                           p_value=_finite(r.p_value), delta_seeds=len(seeds))
            elif name == VALIDATION_CE and baseline is not None and arm != baseline:
                row.update(_ce_delta(points, group.points_of(baseline)))
            rows.append(row)
    main = pd.DataFrame(rows, columns=ROW_COLUMNS)
    main["best"] = _best_flags(main)
    n_ci = sum(1 for r in deltas.values() if r[0])
    if n_ci and any(len(seeds) > 1 for _, seeds in deltas.values()):
        computer.notes.append("delta CI over several seeds: test examples resampled jointly for every seed, "
                              "delta recomputed per seed and averaged (docs/reporting.md).")
    return GroupTable(group, main, _ablation(group, main), computer.notes)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _ce_delta(points: dict[int, Point], base: dict[int, Point]) -> dict[str, Any]:
    """Validation CE is one number per run (no examples to resample): mean paired difference only."""
    diffs = [points[s].metrics["validation_ce"] - base[s].metrics["validation_ce"]
             for s in sorted(set(points) & set(base))
             if points[s].metrics.get("validation_ce") is not None and base[s].metrics.get("validation_ce") is not None]
    return {"delta": float(np.mean(diffs)), "delta_seeds": len(diffs)} if diffs else {}


def _best_flags(frame: pd.DataFrame) -> pd.Series:
    """True for the best mean of each metric (ties all marked); none where no direction is better."""
    best = pd.Series(False, index=frame.index)
    for _, block in frame.groupby("metric", sort=False):
        direction = direction_of(block["higher_is_better"].iloc[0])
        if direction is None or len(block) < 2:
            continue
        target = block["mean"].max() if direction else block["mean"].min()
        best[block.index[np.isclose(block["mean"], target, rtol=1e-12, atol=0)]] = True
    return best


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


# ----------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 4) -> str:
    """Compact number: 4 significant digits, whole numbers above 10^4 without exponent."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    value = float(value)
    return f"{value:.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"


def _signed(value: float, digits: int = 3) -> str:
    text = fmt(value, digits)
    return text if text.startswith("-") else f"+{text}"


ARROWS = {True: "↑", False: "↓"}


def display_rows(table: GroupTable) -> list[dict[str, Any]]:
    """Formatted cells shared by the Markdown, LaTeX and HTML renderings (plus the `best` flag)."""
    out = []
    for row in table.main.itertuples(index=False):
        direction = direction_of(row.higher_is_better)
        spread = f" ± {fmt(row.std, 2)}" if row.std is not None and not _isnan(row.std) else ""
        delta = ""
        if row.delta is not None and not _isnan(row.delta):
            delta = _signed(row.delta)
            if row.ci_low is not None and not _isnan(row.ci_low):
                delta += f" [{_signed(row.ci_low)}, {_signed(row.ci_high)}]"
        out.append({
            "metric": f"{row.metric} {ARROWS[direction]}" if direction is not None else row.metric,
            "arm": row.arm,
            "value": f"{fmt(row.mean)}{spread}",
            "delta": delta,
            "p": stats.format_p_value(row.p_value) if row.p_value is not None and not _isnan(row.p_value) else "",
            "seeds": str(row.n_seeds),
            "n": "" if row.n_examples is None or _isnan(row.n_examples) else str(int(row.n_examples)),
            "best": bool(row.best),
            "first_of_metric": not out or out[-1]["_metric"] != row.metric,
            "_metric": row.metric,
        })
    return out


def direction_of(value: Any) -> bool | None:
    """True/False/None from a frame cell (numpy bools and NaN included)."""
    return None if value is None or pd.isna(value) else bool(value)


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


HEADERS = ["metric", "arm", "mean ± std (seeds)", "Δ vs CE [95% CI]", "p", "seeds", "n"]


def caption(table: GroupTable) -> str:
    g = table.group
    return f"{g.task} / {g.model}: {g.budget()}; seeds {', '.join(map(str, g.seeds))}"


def to_markdown(table: GroupTable) -> str:
    lines = [f"### {caption(table)}", "", "| " + " | ".join(HEADERS) + " |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for cells in display_rows(table):
        value = f"**{cells['value']}**" if cells["best"] else cells["value"]
        lines.append("| " + " | ".join([cells["metric"], cells["arm"], value, cells["delta"], cells["p"],
                                        cells["seeds"], cells["n"]]) + " |")
    lines += ["", "↑/↓: higher/lower is better; bold: best mean per metric. " + footnote_text(table)]
    if table.ablation is not None:
        lines += ["", f"#### Ablation over loss options ({table.group.task} / {table.group.model}), mean over seeds",
                  "", ablation_markdown(table.ablation)]
    return "\n".join(lines)


def footnote_text(table: GroupTable) -> str:
    s = "Δ = arm − CE of the same seed; 95% paired bootstrap CI over test examples; p: two-sided paired bootstrap."
    return " ".join([s, *table.notes])


def ablation_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    align = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns) + "|"
    body = ["| " + " | ".join(fmt(v) if isinstance(v, float) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, align, *body])


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "Δ": r"$\Delta$", "−": "-"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for symbol, command in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def to_latex(table: GroupTable) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); a rule between metrics."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{llrrrrr}", r"\toprule",
             " & ".join(latex_escape(h) for h in HEADERS) + r" \\", r"\midrule"]
    rows = display_rows(table)
    for i, cells in enumerate(rows):
        if i and cells["first_of_metric"]:
            lines.append(r"\midrule")
        value = latex_escape(cells["value"])
        if cells["best"]:
            value = rf"\textbf{{{value}}}"
        parts = [latex_escape(cells["metric"]) if cells["first_of_metric"] else "", latex_escape(cells["arm"]),
                 value, latex_escape(cells["delta"]), cells["p"], cells["seeds"], cells["n"]]
        lines.append(" & ".join(parts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{latex_escape(caption(table))}. {latex_escape(footnote_text(table))}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def missing_markdown(missing: list[Missing]) -> str:
    if not missing:
        return ""
    lines = ["Missing or partial points (not in the tables):", ""]
    lines += [f"- `{m.path}`: {m.reason}" for m in missing]
    return "\n".join(lines)


def render_markdown(tables: list[GroupTable], missing: list[Missing]) -> str:
    parts = [to_markdown(t) for t in tables]
    if missing:
        parts.append(missing_markdown(missing))
    return "\n\n".join(parts) + "\n"


def write_tables(tables: list[GroupTable], missing: list[Missing], out_dir: Path) -> list[Path]:
    """CSV (tidy numbers), LaTeX (booktabs) and Markdown per group, plus all groups in one CSV."""
    out_dir = Path(out_dir)
    stems = group_stems([t.group for t in tables])
    written = []
    for table in tables:
        stem = stems[table.group.key]  # may contain dots (qwen2.5-0.5b): append, never with_suffix
        outputs = {
            out_dir / f"{stem}.csv": table.main.to_csv(index=False),
            out_dir / f"{stem}.tex": to_latex(table),
            out_dir / f"{stem}.md": to_markdown(table) + "\n",
        }
        if table.ablation is not None:
            outputs[out_dir / f"{stem}__ablation.csv"] = table.ablation.to_csv(index=False)
        for path, text in outputs.items():
            write_text_atomic(path, text)
            written.append(path)
    everything = pd.concat([t.main for t in tables], ignore_index=True)
    write_text_atomic(out_dir / "all_groups.csv", everything.to_csv(index=False))
    write_text_atomic(out_dir / "missing.csv",
                      pd.DataFrame([{"path": str(m.path), "reason": m.reason} for m in missing],
                                   columns=["path", "reason"]).to_csv(index=False))
    written += [out_dir / "all_groups.csv", out_dir / "missing.csv"]
    return written
