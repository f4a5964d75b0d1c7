"""Figures per group, built as matplotlib Figure objects (no pyplot state, Agg rendering).

Each function returns the Figure (or None when the group lacks the data), so tests inspect axes,
labels and plotted data instead of pixels; `write_figures` saves PNG and PDF.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.comparison import BASELINE_LOSS
from harness.io import write_error
from harness.report.collect import Collection, Group, complete_groups, group_stems
from harness.render.cells import ARROWS
from harness.report.tables import TableSettings, build_group_table, direction_of

DIVERSITY_METRICS = ["distinct-1", "distinct-2", "ngram-entropy-1", "ngram-entropy-2", "ngram-entropy-4"]
QUALITY_METRICS = ["rouge1", "rouge2", "rougeL"]
UNITS = {
    "rouge": "F1 × 100",
    "bleu": "corpus, 0-100",
    "chrf": "corpus, 0-100",
    "distinct": "unique / total n-grams",
    "ngram-entropy": "nats",
    "seq-rep": "repeated share",
    "mean-length": "words",
    "vocab-size": "word types",
}
ALPHA_LABEL = "alpha (loss exponent; 0 = CE)"
FIXED_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None},
                  "svg": {"Date": None, "Creator": None}}
FIGURE_KINDS = ("diversity_vs_alpha", "quality_vs_diversity", "rare_tokens", "nll_by_bucket", "training_curves")


def unit_of(metric: str) -> str:
    return next((unit for prefix, unit in UNITS.items() if metric.startswith(prefix)), "value")


def seed_means(group: Group) -> pd.DataFrame:
    """mean/std over seeds of every metric per arm (metrics.json only: fast, no bootstrap)."""
    return build_group_table(group, TableSettings(deltas=False)).main


def arm_colors(group: Group) -> dict[str, str]:
    """One colour per arm label in every figure: CE black, the others from the tab10 cycle."""
    colors, cycle = {}, [f"C{i}" for i in range(10)]
    others = [label for arm, label in group.labels().items() if arm[0] != BASELINE_LOSS]
    for arm, label in group.labels().items():
        colors[label] = "black" if arm[0] == BASELINE_LOSS else cycle[others.index(label) % len(cycle)]
    return colors


def _family(options: str) -> str:
    """Arms that differ only in alpha form one line across the alpha axis."""
    return json.dumps({k: v for k, v in json.loads(options).items() if k != "alpha"}, sort_keys=True)


def _family_label(loss: str, family: str, families: list[str]) -> str:
    if len(families) == 1:
        return loss
    extra = ", ".join(f"{k}={v}" for k, v in json.loads(family).items())
    return f"{loss} ({extra})" if extra else loss


def _title(fig: Figure, group: Group, what: str) -> None:
    fig.suptitle(f"{what}\n{group.name}, {group.budget()}, seeds {','.join(map(str, group.seeds))}",
                 fontsize=10)


def _panel_grid(fig: Figure, n: int, ncols: int = 4):
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return list(axes[:n])


def diversity_vs_alpha(group: Group, frame: pd.DataFrame | None = None) -> Figure | None:
    """Diversity and ROUGE against alpha on one alpha axis, error bars = std over seeds, CE as a line."""
    frame = seed_means(group) if frame is None else frame
    alpha_rows = frame[frame["alpha"].notna()]
    if alpha_rows.empty:
        return None
    present = set(frame["metric"])
    metrics = [m for m in DIVERSITY_METRICS + QUALITY_METRICS if m in present]
    if not metrics:
        return None
    ncols = min(4, len(metrics))
    fig = Figure(figsize=(4.0 * ncols, 3.4 * -(-len(metrics) // ncols) + 0.8), layout="constrained")
    for ax, metric in zip(_panel_grid(fig, len(metrics)), metrics):
        rows = frame[frame["metric"] == metric]
        base = rows[rows["loss"] == BASELINE_LOSS]
        if not base.empty:
            mean, std = float(base["mean"].iloc[0]), base["std"].iloc[0]
            ax.axhline(mean, color="black", linestyle="--", linewidth=1, label="ce")
            if pd.notna(std):
                ax.axhspan(mean - std, mean + std, color="black", alpha=0.08, linewidth=0)
            ax.plot([0.0], [mean], marker="s", color="black", linestyle="none")
        with_alpha = rows[rows["alpha"].notna()]
        for loss, by_loss in with_alpha.groupby("loss", sort=True):
            families = sorted({_family(o) for o in by_loss["options"]})
            for family in families:
                line = by_loss[[_family(o) == family for o in by_loss["options"]]].sort_values("alpha")
                ax.errorbar(line["alpha"].astype(float), line["mean"], yerr=line["std"].fillna(0.0),
                            marker="o", capsize=3, label=_family_label(loss, family, families))
        direction = direction_of(rows["higher_is_better"].iloc[0]) if len(rows) else None
        ax.set_title(f"{metric} {ARROWS.get(direction, '')}".strip(), fontsize=10)
        ax.set_xlabel(ALPHA_LABEL)
        ax.set_ylabel(f"{metric} ({unit_of(metric)})")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    _title(fig, group, "Diversity and ROUGE vs alpha (mean ± std over seeds; dashed: CE)")
    return fig


def quality_vs_diversity(group: Group, frame: pd.DataFrame | None = None, *, quality: str | None = None,
                         diversity: str | None = None) -> Figure | None:
    """One point per arm: the quality/diversity trade-off (error bars = std over seeds).

    Default axes: the first of rougeL/rouge1/rouge2 and of distinct-2/distinct-1 the runs report.
    """
    frame = seed_means(group) if frame is None else frame
    present = set(frame["metric"])
    quality = quality or next((m for m in ("rougeL", "rouge1", "rouge2") if m in present), None)
    diversity = diversity or next((m for m in ("distinct-2", "distinct-1") if m in present), None)
    if quality is None or diversity is None:
        return None
    x_rows = frame[frame["metric"] == diversity].set_index("arm")
    y_rows = frame[frame["metric"] == quality].set_index("arm")
    arms = [a for a in x_rows.index if a in y_rows.index]
    if len(arms) < 2:
        return None
    fig = Figure(figsize=(6, 4.6), layout="constrained")
    ax = fig.subplots()
    colors = arm_colors(group)
    for arm in arms:
        x, y = x_rows.loc[arm], y_rows.loc[arm]
        is_ce = x["loss"] == BASELINE_LOSS
        ax.errorbar([x["mean"]], [y["mean"]], xerr=[0 if pd.isna(x["std"]) else x["std"]],
                    yerr=[0 if pd.isna(y["std"]) else y["std"]], marker="s" if is_ce else "o",
                    color=colors.get(arm), capsize=3, label=arm)
    ax.set_xlabel(f"{diversity} ({unit_of(diversity)}) →  more diverse")
    ax.set_ylabel(f"{quality} ({unit_of(quality)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _title(fig, group, "Quality vs diversity, one point per arm")
    return fig


def _profiles(group: Group):
    """Per arm: mean prediction share per bucket over seeds; plus the references' shares."""
    labels = group.labels()
    bucket_names, arms, reference = None, {}, []
    for arm in group.arms():
        shares = []
        for point in group.points_of(arm).values():
            profile = point.metrics.get("rare_token_profile") or {}
            buckets = profile.get("buckets") or []
            if not buckets:
                continue
            names = [str(b.get("training_mass", b.get("bucket"))) for b in buckets]
            if bucket_names is None:
                bucket_names = names
            if names != bucket_names:
                continue  # a different bucketing cannot share the axis
            shares.append([b["prediction_share"] for b in buckets])
            reference.append([b["reference_share"] for b in buckets])
        if shares:
            arms[labels[arm]] = np.asarray(shares)
    return bucket_names, arms, (np.mean(reference, axis=0) if reference else None)


def rare_token_usage(group: Group) -> Figure | None:
    """Share of generated tokens per training-frequency bucket, per arm and for the references."""
    bucket_names, arms, reference = _profiles(group)
    if not arms:
        return None
    fig = Figure(figsize=(12, 4.4), layout="constrained")
    share_ax, ratio_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(bucket_names))
    series = list(arms.items()) + [("references", reference[None, :])]
    width = 0.8 / len(series)
    colors = arm_colors(group)
    for i, (label, shares) in enumerate(series):
        mean, std = shares.mean(axis=0) * 100, (shares.std(axis=0, ddof=1) * 100 if len(shares) > 1 else None)
        style = {"color": "0.7", "hatch": "//"} if label == "references" else {"color": colors.get(label)}
        share_ax.bar(x + (i - (len(series) - 1) / 2) * width, mean, width, yerr=std, label=label, capsize=2, **style)
    share_ax.set_xticks(x, bucket_names, rotation=45, ha="right", fontsize=8)
    share_ax.set_xlabel("training-frequency bucket (share of training token mass, frequent → rare)")
    share_ax.set_ylabel("share of tokens (%)")
    share_ax.set_title("Token share per bucket (mean over seeds)", fontsize=10)
    share_ax.legend(fontsize=8)
    with np.errstate(divide="ignore", invalid="ignore"):
        for label, shares in arms.items():
            ratio = np.where(reference > 0, shares.mean(axis=0) / reference, np.nan)
            ratio_ax.plot(x, ratio, marker="o", label=label, color=colors.get(label))
    ratio_ax.axhline(1.0, color="0.4", linestyle="--", linewidth=1, label="references")
    ratio_ax.set_xticks(x, bucket_names, rotation=45, ha="right", fontsize=8)
    ratio_ax.set_xlabel("training-frequency bucket (frequent → rare)")
    ratio_ax.set_ylabel("generated share / reference share")
    ratio_ax.set_title("Over- (>1) and under-use (<1) vs references", fontsize=10)
    ratio_ax.legend(fontsize=8)
    for ax in (share_ax, ratio_ax):
        ax.grid(alpha=0.3, axis="y")
    _title(fig, group, "Rare-token usage by training frequency")
    return fig


def nll_by_bucket(group: Group, settings: TableSettings = TableSettings()) -> Figure | None:
    """Δ NLL vs CE of the test reference tokens per training-frequency bucket (teacher-forced), one
    line per arm with its 95% paired-bootstrap CI, averaged over the seeds that measured it: does
    the loss lower NLL on the rare buckets, and what does it pay on the frequent ones?"""
    from harness.metrics.likelihood import paired_bucket_deltas
    from harness.report.deltas import likelihood_runs

    baseline = group.baseline()
    if baseline is None:
        return None
    labels, colors, lines = group.labels(), arm_colors(group), {}
    for arm in group.arms():
        if arm == baseline:
            continue
        runs, seeds = likelihood_runs(group, arm, baseline)
        if runs:
            lines[labels[arm]] = (paired_bucket_deltas(runs, "nll", n_boot=settings.n_boot,
                                                       seed=settings.bootstrap_seed), seeds)
    if not lines:
        return None
    fig = Figure(figsize=(8, 4.4), layout="constrained")
    ax = fig.subplots()
    first = next(iter(lines.values()))[0]
    x = np.arange(len(first))
    for label, (rows, seeds) in lines.items():
        delta = np.array([np.nan if r["delta"] is None else r["delta"] for r in rows])
        low = np.array([np.nan if r["ci_low"] is None else r["ci_low"] for r in rows])
        high = np.array([np.nan if r["ci_high"] is None else r["ci_high"] for r in rows])
        ax.errorbar(x, delta, yerr=[delta - low, high - delta], marker="o", capsize=3, color=colors.get(label),
                    label=f"{label} (seeds {','.join(map(str, seeds))})")
    ax.axhline(0.0, color="black", linewidth=1, label=f"{BASELINE_LOSS} (Δ = 0)")
    n_buckets = len(first) - 1
    names = [f"{100 * b / n_buckets:g}-{100 * (b + 1) / n_buckets:g}%" for b in range(n_buckets)] + ["unseen"]
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("training-frequency bucket of the reference token (share of training token mass, frequent → rare)")
    ax.set_ylabel(f"Δ NLL vs {BASELINE_LOSS} (nats per token) ↓ better")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _title(fig, group, "Teacher-forced NLL of the test references by training frequency")
    return fig


def _curve(points, key: str) -> pd.Series:
    """Mean over seeds of one logged quantity per step."""
    records = [{"seed": p.seed, "step": r["step"], key: r[key]} for p in points
               for r in p.train_log() if r.get(key) is not None and r.get("step") is not None]
    if not records:
        return pd.Series(dtype=float)
    return pd.DataFrame(records).groupby("step")[key].mean().sort_index()


def training_curves(group: Group) -> Figure | None:
    """Training loss per step (one panel per loss: their scales differ) and, when the task evaluated
    during training (training.eval_steps), the plain validation CE of every arm."""
    labels, colors = group.labels(), arm_colors(group)
    losses = sorted({arm[0] for arm in group.arms()}, key=lambda l: (l != BASELINE_LOSS, l))
    train = {arm: _curve(group.points_of(arm).values(), "loss") for arm in group.arms()}
    evals = {arm: _curve(group.points_of(arm).values(), "eval_loss") for arm in group.arms()}
    panels = [loss for loss in losses if any(not s.empty for a, s in train.items() if a[0] == loss)]
    has_eval = any(not s.empty for s in evals.values())
    n = len(panels) + has_eval
    if n == 0:
        return None
    fig = Figure(figsize=(4.6 * n, 3.8), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False).ravel()
    for ax, loss in zip(axes, panels):
        for arm, series in train.items():
            if arm[0] == loss and not series.empty:
                ax.plot(series.index, series.values, label=labels[arm], color=colors[labels[arm]])
        what = "cross-entropy" if loss == BASELINE_LOSS else f"{loss}-weighted loss"
        ax.set_title(f"training loss: {loss}", fontsize=10)
        ax.set_ylabel(f"{what} (nats/token)" if loss == BASELINE_LOSS else f"{what} (own scale)")
    if has_eval:
        ax = axes[-1]
        for arm, series in evals.items():
            if not series.empty:
                ax.plot(series.index, series.values, marker=".", label=labels[arm], color=colors[labels[arm]])
        ax.set_title("validation CE (plain, every arm)", fontsize=10)
        ax.set_ylabel("cross-entropy (nats/token)")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _title(fig, group, "Training curves (mean over seeds)")
    return fig


def group_figures(group: Group) -> dict[str, Figure]:
    """Every figure the group's data allows, by kind."""
    frame = seed_means(group)
    made = {
        "diversity_vs_alpha": diversity_vs_alpha(group, frame),
        "quality_vs_diversity": quality_vs_diversity(group, frame),
        "rare_tokens": rare_token_usage(group),
        "nll_by_bucket": nll_by_bucket(group),
        "training_curves": training_curves(group),
    }
    return {kind: fig for kind, fig in made.items() if fig is not None}


def save_figure(fig: Figure, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """<stem>.<fmt> per format; a read-only folder or a full disk fails with one line naming the file."""
    paths, path = [], stem.parent
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            # No date or software in the metadata, and SVG ids from a fixed salt (not random), keep
            # the files byte-identical for identical inputs; other formats take matplotlib's defaults.
            with matplotlib.rc_context({"svg.hashsalt": "pdl-bench"}):
                fig.savefig(path, dpi=120, metadata=FIXED_METADATA.get(fmt))
            paths.append(path)
    except OSError as err:
        raise write_error(path, err) from err
    return paths


def write_figures(collection: Collection, out_dir: Path,
                  formats: tuple[str, ...] = ("png", "pdf")) -> dict[str, dict[str, list[Path]]]:
    """Save every group's figures as <out_dir>/<task>__<model>[__<config>]__<kind>.<fmt>."""
    groups = complete_groups(collection)
    stems = group_stems(groups)
    written: dict[str, dict[str, list[Path]]] = {}
    for group in groups:
        written[group.key] = {kind: save_figure(fig, Path(out_dir) / f"{stems[group.key]}__{kind}", formats)
                              for kind, fig in group_figures(group).items()}
    return written
