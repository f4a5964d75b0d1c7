"""Reporting from a hand-written results tree: tables, figures, the HTML page, grouping, bad input."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from harness import cli  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.metrics import METRICS, MetricContext, compare  # noqa: E402
from harness.report import plots  # noqa: E402
from harness.report.collect import collect, group_stems  # noqa: E402
from harness.report.html import pick_examples, render_report  # noqa: E402
from harness.metrics.paired import seed_averaged_compare  # noqa: E402
from harness.report.synthetic import WordTokenizer, task_config, write_point  # noqa: E402
from harness.report.table_render import render_markdown, to_latex, to_markdown, write_tables  # noqa: E402
from harness.report.tables import TableSettings, build_tables  # noqa: E402
from needs import run_script  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = "org/Tiny-LM"
ARMS = [("ce", {}), ("pdl", {"alpha": 0.5}), ("pdl", {"alpha": 1.0})]
REFERENCES = ["the king went to the city", "a river crossed the valley", "she gave bread and wine",
              "they built a house of cedar", "he heard thunder at night", "the shepherd saw a falcon"]
# Hand-made metrics.json values per (arm index, seed).
VALUES = {
    (0, 0): {"distinct-1": 0.10, "distinct-2": 0.30, "rouge1": 20.0, "mean-length": 6.0},
    (0, 1): {"distinct-1": 0.12, "distinct-2": 0.34, "rouge1": 22.0, "mean-length": 6.5},
    (1, 0): {"distinct-1": 0.20, "distinct-2": 0.50, "rouge1": 21.0, "mean-length": 7.0},
    (1, 1): {"distinct-1": 0.26, "distinct-2": 0.58, "rouge1": 19.0, "mean-length": 7.5},
    (2, 0): {"distinct-1": 0.31, "distinct-2": 0.70, "rouge1": 15.0, "mean-length": 5.0},
    (2, 1): {"distinct-1": 0.29, "distinct-2": 0.66, "rouge1": 17.0, "mean-length": 5.5},
}
VALIDATION_CE = {(0, 0): 2.0, (0, 1): 2.2, (1, 0): 2.5, (1, 1): 2.4, (2, 0): 3.0, (2, 1): 3.1}
PROFILE_SHARES = {0: [0.7, 0.2, 0.1], 1: [0.5, 0.3, 0.2], 2: [0.3, 0.4, 0.3]}
REFERENCE_SHARES = [0.4, 0.35, 0.25]


def predictions(arm: int, seed: int) -> list[str]:
    """Arm 0 repeats common words; higher arms use more varied words (different per seed)."""
    rare = ["cedar", "falcon", "thunder", "silver", "orchard", "meadow", "lantern", "ember", "quarry"]
    rows = []
    for i, ref in enumerate(REFERENCES):
        words = ref.split()[: 3 + (i + seed) % 3]
        if arm:
            words += [rare[(i * arm + seed + k) % len(rare)] for k in range(arm + 1)]
        else:
            words += ["the", "the"]
        rows.append(" ".join(words))
    return rows


def profile(arm: int) -> dict:
    buckets = [{"bucket": b, "training_mass": name, "prediction_share": PROFILE_SHARES[arm][b],
                "reference_share": REFERENCE_SHARES[b]} for b, name in enumerate(["0-50%", "50-100%", "count 0"])]
    return {"n_buckets": 2, "buckets": buckets}


def train_log(arm: int, seed: int, steps: int = 20) -> list[dict]:
    scale = 1.0 if arm == 0 else 100.0 * arm
    log = [{"step": s, "epoch": s / steps, "loss": scale * (3.0 - 0.1 * s + 0.01 * seed)} for s in range(2, steps + 1, 2)]
    return log + [{"step": s, "eval_loss": 2.5 - 0.01 * s + 0.1 * arm} for s in (10, 20)]


def write_tree(root: Path, *, seeds=(0, 1), arms=ARMS, task=None, model=MODEL, steps=20, partial=True,
               extra_metrics=None, metric_details=None) -> Path:
    task = task or task_config("toy", max_steps=steps, metrics=sorted(VALUES[(0, 0)]))
    counts = np.arange(60, 0, -1)
    for index, (loss, options) in enumerate(arms):
        for seed in seeds:
            values = dict(VALUES[(index % 3, seed % 2)], **(extra_metrics or {}))
            rows = [{"id": f"ex{i}", "prediction": p, "reference": r}
                    for i, (p, r) in enumerate(zip(predictions(index, seed), REFERENCES))]
            write_point(root, task, model, loss, options, seed, generations=rows, metric_values=values,
                        validation_ce=VALIDATION_CE[(index % 3, seed % 2)], train_log=train_log(index % 3, seed, steps),
                        train_counts=counts, profile=profile(index % 3), global_steps=steps, n_train=32,
                        metric_details=metric_details)
    if partial:
        write_point(root, task, model, "pdl", {"alpha": 2.0}, 0, generations=[], metric_values=None)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def tables(tree):
    return build_tables(collect(tree), TableSettings(n_boot=200))


def rows_of(table, metric):
    return table.main[table.main["metric"] == metric].set_index("arm")


# ----------------------------------------------------------------- tables


def test_table_means_stds_and_counts_match_metrics_json(tables):
    (table,) = tables
    for metric in ("distinct-1", "distinct-2", "rouge1", "mean-length"):
        rows = rows_of(table, metric)
        for index, label in enumerate(["ce", "pdl(alpha=0.5)", "pdl(alpha=1)"]):
            per_seed = [VALUES[(index, s)][metric] for s in (0, 1)]
            assert rows.loc[label, "mean"] == pytest.approx(statistics.mean(per_seed))
            assert rows.loc[label, "std"] == pytest.approx(statistics.stdev(per_seed))
            assert rows.loc[label, "n_seeds"] == 2
            assert rows.loc[label, "n_examples"] == len(REFERENCES)
    ce_rows = rows_of(table, "validation-ce")
    assert ce_rows.loc["pdl(alpha=1)", "delta"] == pytest.approx(((3.0 - 2.0) + (3.1 - 2.2)) / 2)


def test_best_value_follows_the_metric_direction(tables):
    (table,) = tables
    best = table.main[table.main["best"]].set_index("metric")["arm"]
    assert best["distinct-1"] == "pdl(alpha=1)"  # higher is better: 0.30
    assert best["rouge1"] == "ce"  # 21.0 vs 20.0 vs 16.0
    assert best["validation-ce"] == "ce"  # lower is better
    assert "mean-length" not in best.index  # no better direction
    markdown = render_markdown(tables, [])
    assert "**0.3 ± 0.014**" in markdown and "distinct-1 ↑" in markdown


def test_table_markdown_is_pinned(tree):
    """Means, stds, best marks and the validation-CE delta as `pdl-bench table` prints them (the
    delta and interval cells are pinned in tests/test_render.py)."""
    (table,) = build_tables(collect(tree), TableSettings(deltas=False))
    assert to_markdown(table).splitlines() == [
        "### toy / org/Tiny-LM: 20 steps, 32 train examples; seeds 0, 1",
        "",
        "| metric | arm | mean ± std (seeds) | Δ vs CE [95% CI] | p | seed CI | Δ per seed | seeds | n |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        "| rouge1 ↑ | ce | **21 ± 1.4** |  |  |  |  | 2 | 6 |",
        "| rouge1 ↑ | pdl(alpha=0.5) | 20 ± 1.4 |  |  |  |  | 2 | 6 |",
        "| rouge1 ↑ | pdl(alpha=1) | 16 ± 1.4 |  |  |  |  | 2 | 6 |",
        "| distinct-1 ↑ | ce | 0.11 ± 0.014 |  |  |  |  | 2 | 6 |",
        "| distinct-1 ↑ | pdl(alpha=0.5) | 0.23 ± 0.042 |  |  |  |  | 2 | 6 |",
        "| distinct-1 ↑ | pdl(alpha=1) | **0.3 ± 0.014** |  |  |  |  | 2 | 6 |",
        "| distinct-2 ↑ | ce | 0.32 ± 0.028 |  |  |  |  | 2 | 6 |",
        "| distinct-2 ↑ | pdl(alpha=0.5) | 0.54 ± 0.057 |  |  |  |  | 2 | 6 |",
        "| distinct-2 ↑ | pdl(alpha=1) | **0.68 ± 0.028** |  |  |  |  | 2 | 6 |",
        "| mean-length | ce | 6.25 ± 0.35 |  |  |  |  | 2 | 6 |",
        "| mean-length | pdl(alpha=0.5) | 7.25 ± 0.35 |  |  |  |  | 2 | 6 |",
        "| mean-length | pdl(alpha=1) | 5.25 ± 0.35 |  |  |  |  | 2 | 6 |",
        "| validation-ce ↓ | ce | **2.1 ± 0.14** |  |  |  |  | 2 |  |",
        "| validation-ce ↓ | pdl(alpha=0.5) | 2.45 ± 0.071 | +0.35 |  |  | +0.5 / +0.2 | 2 |  |",
        "| validation-ce ↓ | pdl(alpha=1) | 3.05 ± 0.071 | +0.95 |  |  | +1 / +0.9 | 2 |  |",
        "",
        "↑/↓: higher/lower is better; bold: best mean per metric. Δ = arm − CE of the same seed; 95% paired "
        "bootstrap CI over test examples; p: two-sided paired bootstrap.",
    ]


def test_seed_averaged_delta_matches_per_seed_recomputation(tables):
    (table,) = tables
    refs = REFERENCES
    for metric in ("distinct-1", "mean-length"):
        spec = METRICS.get(metric)
        expected = np.mean([spec.corpus_value(predictions(2, s), refs) - spec.corpus_value(predictions(0, s), refs)
                            for s in (0, 1)])
        row = rows_of(table, metric).loc["pdl(alpha=1)"]
        assert row["delta"] == pytest.approx(expected)
        assert row["delta_seeds"] == 2 and 0 < row["p_value"] <= 1
        assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    assert pd.isna(rows_of(table, "distinct-1").loc["ce", "delta"])  # the baseline has no delta
    assert any("resampled jointly" in note for note in table.notes)


def test_a_seed_averaged_row_carries_each_seeds_delta_and_the_hierarchical_interval(tables):
    (table,) = tables
    refs = REFERENCES
    spec = METRICS.get("mean-length")
    row = rows_of(table, "mean-length").loc["pdl(alpha=1)"]
    per_seed = [spec.corpus_value(predictions(2, s), refs) - spec.corpus_value(predictions(0, s), refs) for s in (0, 1)]
    assert [float(d) for d in row["per_seed_deltas"].split(",")] == pytest.approx(per_seed)
    assert row["seed_ci_low"] <= row["delta"] <= row["seed_ci_high"]


def test_a_seed_averaged_row_shows_its_seed_ci_and_per_seed_deltas_in_markdown_latex_and_html(tables, tree):
    """Beside the CI over test examples, with the delta's digits, and a footnote telling the two apart."""
    from harness.numbers import format_delta, format_interval
    from harness.render.cells import DELTA_DIGITS

    (table,) = tables
    row = rows_of(table, "mean-length").loc["pdl(alpha=1)"]
    seed_ci = format_interval(row["seed_ci_low"], row["seed_ci_high"], DELTA_DIGITS)
    per_seed = " / ".join(format_delta(float(d), DELTA_DIGITS) for d in row["per_seed_deltas"].split(","))
    markdown = to_markdown(table)
    line = next(line for line in markdown.splitlines() if line.startswith("| mean-length | pdl(alpha=1) |"))
    assert line.split(" | ")[5:7] == [seed_ci, per_seed] and seed_ci.startswith("[") and " / " in per_seed
    assert "seed CI, the hierarchical 95% CI, also resamples the seeds" in markdown
    assert f"& {seed_ci} & {per_seed} &" in to_latex(table)
    html = render_report(collect(tree), TableSettings(n_boot=200), n_examples=0)
    assert f'<td class="num">{seed_ci}</td><td class="num">{per_seed}</td>' in html
    assert "also resamples the seeds" in html


def test_a_rarefied_distinct_row_states_its_budget_under_the_table(tmp_path):
    """m is read from each point's details; an arm measured at another m is named; no such row, no note."""
    import json

    details = {"rarefied-distinct-2": {"budget": 7, "share": 0.1, "tokens": "words"}}
    root = write_tree(tmp_path, partial=False, extra_metrics={"rarefied-distinct-2": 0.5}, metric_details=details)
    same = ("rarefied-distinct-2: expected distinct 2-grams in a subsample of m = 7 2-grams (the references' "
            "2-grams // 10), the same m for every arm.")
    (table,) = build_tables(collect(root), TableSettings(deltas=False))
    assert same in to_markdown(table)
    html = render_report(collect(root), TableSettings(deltas=False), n_examples=0)
    assert same.replace("'", "&#x27;") in html
    point = next(p for p in root.rglob("pdl-a0.5-s1-*") if p.is_dir())
    record = json.loads((point / "metrics.json").read_text())
    record["metrics"]["rarefied-distinct-2"]["details"]["budget"] = 9
    (point / "metrics.json").write_text(json.dumps(record))
    (table,) = build_tables(collect(root), TableSettings(deltas=False))
    assert ("rarefied-distinct-2: expected distinct 2-grams in a subsample of m 2-grams (the references' 2-grams "
            "// 10), but not the same m for every arm: ce m = 7, pdl(alpha=0.5) m = 7 and m = 9, pdl(alpha=1) m = 7."
            in table.notes)
    (table,) = build_tables(collect(root), TableSettings(deltas=False, metrics=("distinct-2",)))
    assert not any("rarefied" in note for note in table.notes)


def test_one_seed_equals_the_ordinary_paired_bootstrap():
    preds_a, preds_b = predictions(0, 0), predictions(1, 0)
    metrics = ["distinct-2", "rouge1", "rare-token-recall"]
    tok = WordTokenizer()
    context = MetricContext(train_counts=np.arange(60, 0, -1), tokenize=lambda t: tok(t)["input_ids"])
    ours = seed_averaged_compare([(preds_a, preds_b, REFERENCES, context)], metrics, n_boot=300, seed=3)
    theirs = compare(preds_a, preds_b, REFERENCES, metrics=metrics, context=context, n_boot=300, seed=3)
    for name in metrics:
        for field in ("a", "b", "delta", "ci_low", "ci_high", "p_value"):
            assert getattr(ours[name], field) == pytest.approx(getattr(theirs[name], field)), (name, field)


def test_single_seed_table_uses_compare(tmp_path):
    root = write_tree(tmp_path, seeds=(0,), partial=False)
    (table,) = build_tables(collect(root), TableSettings(n_boot=150, bootstrap_seed=4))
    expected = compare(predictions(0, 0), predictions(1, 0), REFERENCES, metrics=["distinct-2"], n_boot=150, seed=4)
    row = rows_of(table, "distinct-2").loc["pdl(alpha=0.5)"]
    assert (row["delta"], row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
        (expected["distinct-2"].delta, expected["distinct-2"].ci_low, expected["distinct-2"].ci_high,
         expected["distinct-2"].p_value))
    assert pd.isna(row["std"])  # one seed: no spread


def test_rare_token_deltas_skipped_with_a_footnote_when_the_tokenizer_is_missing(tmp_path):
    root = write_tree(tmp_path, seeds=(0,), partial=False, extra_metrics={"rare-token-recall": 0.1})

    def no_tokenizer(model):
        raise HarnessError(f"model {model} is not available offline")

    (table,) = build_tables(collect(root), TableSettings(n_boot=50), tokenizer_loader=no_tokenizer)
    assert pd.isna(rows_of(table, "rare-token-recall").loc["pdl(alpha=0.5)", "delta"])
    assert not pd.isna(rows_of(table, "distinct-1").loc["pdl(alpha=0.5)", "delta"])
    assert any("rare-token-recall" in n and "could not be loaded" in n for n in table.notes)
    assert "could not be loaded" in render_markdown([table], [])
    (with_tok,) = build_tables(collect(root), TableSettings(n_boot=50), tokenizer_loader=lambda m: WordTokenizer())
    assert not pd.isna(rows_of(with_tok, "rare-token-recall").loc["pdl(alpha=0.5)", "delta"])


@pytest.mark.parametrize("trust", [False, True])
def test_default_tokenizer_loader_passes_trust_remote_code(tmp_path, monkeypatch, trust):
    """The rare-token deltas load the model's tokenizer; --trust-remote-code reaches that load."""
    import harness.models

    root = write_tree(tmp_path, seeds=(0,), partial=False, extra_metrics={"rare-token-recall": 0.1})
    calls = []

    def loader(model, *, trust_remote_code=False):
        calls.append((model, trust_remote_code))
        return WordTokenizer()

    monkeypatch.setattr(harness.models, "load_tokenizer", loader)
    (table,) = build_tables(collect(root), TableSettings(n_boot=20, trust_remote_code=trust))
    assert calls and {c[1] for c in calls} == {trust}
    assert not pd.isna(rows_of(table, "rare-token-recall").loc["pdl(alpha=0.5)", "delta"])


def test_table_files_csv_latex_markdown(tree, tables, tmp_path):
    collection = collect(tree)
    written = write_tables(tables, collection.missing, tmp_path)
    names = {p.name for p in written}
    assert {"toy__tiny-lm.csv", "toy__tiny-lm.tex", "toy__tiny-lm.md", "all_groups.csv", "missing.csv"} <= names
    frame = pd.read_csv(tmp_path / "toy__tiny-lm.csv")
    row = frame[(frame["metric"] == "rouge1") & (frame["arm"] == "pdl(alpha=1)")].iloc[0]
    assert row["mean"] == pytest.approx(16.0) and row["std"] == pytest.approx(statistics.stdev([15.0, 17.0]))
    latex = to_latex(tables[0])
    assert r"\toprule" in latex and r"\bottomrule" in latex and r"\textbf{" in latex and r"$\pm$" in latex
    assert len(pd.read_csv(tmp_path / "missing.csv")) == 1


def test_models_with_dots_in_their_names_get_their_own_table_files(tmp_path):
    root = tmp_path / "results"
    write_tree(root, seeds=(0,), partial=False, model="Qwen/Qwen2.5-0.5B-Instruct")
    write_tree(root, seeds=(0,), partial=False, model="Qwen/Qwen2.5-1.5B-Instruct")
    collection = collect(root)
    tables = build_tables(collection, TableSettings(n_boot=50), tokenizer_loader=lambda ref: WordTokenizer())
    names = {p.name for p in write_tables(tables, collection.missing, tmp_path / "out")}
    assert {"toy__qwen2.5-0.5b-instruct.csv", "toy__qwen2.5-1.5b-instruct.csv"} <= names


def test_missing_and_partial_points_are_reported(tree, tables):
    collection = collect(tree)
    assert len(collection.missing) == 1
    assert collection.missing[0].path.name.startswith("pdl-a2-s0-")
    assert "no metrics.json" in collection.missing[0].reason
    markdown = render_markdown(tables, collection.missing)
    assert "Missing or partial" in markdown and "pdl-a2-s0-" in markdown
    assert all("alpha=2" not in label for label in tables[0].main["arm"])


def test_archived_and_comparison_folders_are_skipped(tmp_path):
    root = write_tree(tmp_path, seeds=(0,), partial=False)
    point = next(root.glob("toy/tiny-lm/ce-s0-*"))
    shutil.copytree(point, point.with_name(point.name + ".replaced-20240101T000000"))
    (point.parent / "comparisons").mkdir()
    collection = collect(root)
    assert len(collection.groups[0].points) == 3 and not collection.missing


def test_mixed_configs_are_grouped_by_task_model_and_budget(tmp_path):
    write_tree(tmp_path, seeds=(0,), partial=False, steps=20)
    write_tree(tmp_path, seeds=(0,), partial=False, steps=40)
    write_tree(tmp_path, seeds=(0,), partial=False, model="org/Other-LM")
    write_tree(tmp_path, seeds=(0,), partial=False, task=task_config("other", max_steps=20, metrics=["rouge1"]))
    groups = collect(tmp_path).groups
    assert sorted((g.task, g.model, g.config["task"]["training"]["max_steps"]) for g in groups) == [
        ("other", MODEL, 20), ("toy", "org/Other-LM", 20), ("toy", MODEL, 20), ("toy", MODEL, 40)]
    for group in groups:
        assert len(group.points) == 3 and group.labels()[group.baseline()] == "ce"
    budgets = {g.budget() for g in groups if g.task == "toy" and g.model == MODEL}
    assert budgets == {"20 steps, 32 train examples", "40 steps, 32 train examples"}
    stems = group_stems(groups)
    assert len(set(stems.values())) == 4
    assert sum(stem.startswith("toy__tiny-lm__") for stem in stems.values()) == 2  # ambiguous: hash added


def test_ablation_table_when_pdl_options_vary(tmp_path):
    arms = [("ce", {}), ("pdl", {"alpha": 0.5, "normalization": "token_mean"}),
            ("pdl", {"alpha": 0.5, "normalization": "weight_sum"})]
    root = write_tree(tmp_path, seeds=(0,), arms=arms, partial=False)
    (table,) = build_tables(collect(root), TableSettings(deltas=False))
    assert set(table.main["arm"]) == {"ce", "pdl(alpha=0.5, normalization=token_mean)",
                                      "pdl(alpha=0.5, normalization=weight_sum)"}
    ablation = table.ablation.set_index("normalization")
    assert ablation.loc["weight_sum", "distinct-1"] == pytest.approx(VALUES[(2, 0)]["distinct-1"])
    assert "alpha" not in ablation.columns  # alpha does not vary here
    assert "Ablation" in render_markdown([table], [])
    (plain,) = build_tables(collect(write_tree(tmp_path / "b", seeds=(0,), partial=False)), TableSettings(deltas=False))
    assert plain.ablation is None  # alpha alone is already the main table


def test_bad_results_dirs_raise_one_clear_error(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        collect(tmp_path / "nope")
    with pytest.raises(HarnessError, match="no result points"):
        collect(tmp_path)
    (tmp_path / "tables").mkdir()
    with pytest.raises(HarnessError, match="no result points"):
        collect(tmp_path)
    only_partial = write_tree(tmp_path / "p", seeds=(), partial=True)
    with pytest.raises(HarnessError, match="no finished point"):
        build_tables(collect(only_partial))


def test_unknown_metric_filter_fails_clearly(tree):
    with pytest.raises(HarnessError, match="distinct-9"):
        build_tables(collect(tree), TableSettings(metrics=("distinct-9",)))


# ----------------------------------------------------------------- figures


def test_diversity_vs_alpha_plots_seed_means_with_ce_reference(tree):
    group = collect(tree).groups[0]
    fig = plots.diversity_vs_alpha(group)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["distinct-1 ↑", "distinct-2 ↑", "rouge1 ↑"]
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("alpha") and "n-grams" in ax.get_ylabel()
    pdl_bars = next(c for c in ax.containers if c.get_label() == "pdl")  # errorbar: line + caps + bars
    pdl_line = pdl_bars.lines[0]
    assert list(pdl_line.get_xdata()) == [0.5, 1.0]
    assert list(pdl_line.get_ydata()) == pytest.approx([0.23, 0.30])
    ce_line = next(line for line in ax.get_lines() if line.get_label() == "ce")
    assert list(ce_line.get_ydata()) == pytest.approx([0.11, 0.11])  # horizontal reference at the CE mean
    assert "toy" in fig.texts[0].get_text() and "20 steps" in fig.texts[0].get_text()


def test_rare_token_figure_has_a_bar_series_per_arm_and_references(tree):
    fig = plots.rare_token_usage(collect(tree).groups[0])
    share_ax, ratio_ax = fig.axes
    labels = [c.get_label() for c in share_ax.containers if hasattr(c, "patches")]
    assert labels == ["ce", "pdl(alpha=0.5)", "pdl(alpha=1)", "references"]
    ce_bars = share_ax.containers[[c.get_label() for c in share_ax.containers].index("ce")]
    assert [p.get_height() for p in ce_bars.patches] == pytest.approx([70, 20, 10])
    assert share_ax.get_ylabel() == "share of tokens (%)"
    ratio = next(line for line in ratio_ax.get_lines() if line.get_label() == "pdl(alpha=1)")
    assert list(ratio.get_ydata()) == pytest.approx([0.3 / 0.4, 0.4 / 0.35, 0.3 / 0.25])


def test_training_curves_separate_loss_scales_and_validation_ce(tree):
    fig = plots.training_curves(collect(tree).groups[0])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["training loss: ce", "training loss: pdl", "validation CE (plain, every arm)"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 2, 3]
    ce = fig.axes[0].get_lines()[0]
    assert ce.get_ydata()[0] == pytest.approx(3.0 - 0.2 + 0.005)  # step 2, mean over seeds 0 and 1
    assert all(ax.get_xlabel() == "optimizer step" for ax in fig.axes)


@pytest.mark.slow  # two `pdl-bench plot` processes at once (~6 s)
def test_figures_are_byte_identical_for_identical_inputs(tree, tmp_path):
    """`plot` run twice, in two processes at different times, writes the same bytes: PDFs and SVGs
    carry no date (SOURCE_DATE_EPOCH, which matplotlib would write as the date, sets the two clocks)
    and SVG ids come from a fixed salt."""
    outs = [tmp_path / clock for clock in ("1000000000", "2000000000")]
    runs = [subprocess.Popen([sys.executable, "-m", "harness", "plot", "--results-dir", str(tree), "--out", str(out),
                              "--formats", "png,pdf,svg"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO), "SOURCE_DATE_EPOCH": out.name})
            for out in outs]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    drawn = len(plots.FIGURE_KINDS) - 1  # no point of the tree measured the likelihood: no nll_by_bucket
    assert [sum(name.endswith(f".{fmt}") for name in files) for fmt in ("png", "pdf", "svg")] == [drawn] * 3
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


# ----------------------------------------------------------------- HTML report


def test_report_is_self_contained_and_escaped(tmp_path):
    root = write_tree(tmp_path, seeds=(0,))
    point = next(root.glob("toy/tiny-lm/pdl-a1-s0-*"))
    rows = (point / "generations.jsonl").read_text().replace("cedar", "<script>alert(1)</script>")
    (point / "generations.jsonl").write_text(rows)
    settings = TableSettings(n_boot=50)
    page = render_report(collect(root), settings, n_examples=6)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 4
    assert "Missing or partial points" in page and "toy / org/Tiny-LM" in page


def test_examples_are_drawn_reproducibly_with_the_same_ids(tree):
    group = collect(tree).groups[0]
    seed, first = pick_examples(group, 3, seed=5)
    assert seed == 0 and [e["id"] for e in first] == [e["id"] for e in pick_examples(group, 3, seed=5)[1]]
    example = first[0]
    index = int(example["id"][2:])
    assert example["reference"] == REFERENCES[index]
    assert example["outputs"] == {"ce": predictions(0, 0)[index], "pdl(alpha=0.5)": predictions(1, 0)[index],
                                  "pdl(alpha=1)": predictions(2, 0)[index]}


# ----------------------------------------------------------------- commands


@pytest.mark.slow  # renders 8 figure files and a report (~5 s)
def test_table_plot_report_commands(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["table", "--results-dir", str(tree), "--out", str(out / "tables"), "--n-boot", "50"]) == 0
    printed = capsys.readouterr().out
    assert "| distinct-1 ↑ | pdl(alpha=1) |" in printed and "Missing or partial" in printed
    assert cli.main(["plot", "--results-dir", str(tree), "--out", str(out / "figures")]) == 0
    files = sorted(p.name for p in (out / "figures").iterdir())
    drawn = [kind for kind in plots.FIGURE_KINDS if kind != "nll_by_bucket"]  # no point measured likelihood
    assert files == sorted(f"toy__tiny-lm__{kind}.{fmt}" for kind in drawn for fmt in ("png", "pdf"))
    assert all(p.stat().st_size > 1000 for p in (out / "figures").iterdir())
    assert cli.main(["report", "--results-dir", str(tree), "--output", str(out / "r.html"), "--n-boot", "50"]) == 0
    assert (out / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_commands_fail_with_one_line_on_a_missing_results_dir(tmp_path, capsys):
    for command in ("table", "plot", "report"):
        assert cli.main([command, "--results-dir", str(tmp_path / "none")]) == 2
        err = capsys.readouterr().err
        assert "does not exist" in err and "Traceback" not in err


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: scripts/install_chromium.sh apt-installs it when it is missing (as root, as
    in CI, where a failure fails the test). Not root and not installed, the test skips, saying so."""
    done = run_script("chromium", "install_chromium.sh", timeout=600, installable=os.geteuid() == 0)
    return done.stdout.splitlines()[-1]


@pytest.mark.slow
def test_report_renders_in_headless_chromium(chromium, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "check_report_browser.py"), "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.png").stat().st_size > 20_000
