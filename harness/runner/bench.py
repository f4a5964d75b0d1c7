"""Paired comparison: CE and PDL (or any two losses) from the same init, seed and data order.

The comparison is rebuilt from the two points' folders alone (generations + training counts), so it
can be redone on a CPU without the model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.comparison import Comparison, from_paired
from harness.errors import HarnessError
from harness.io import read_jsonl, write_json_atomic, write_text_atomic
from harness.metrics.likelihood import rows_legend
from harness.numbers import format_value
from harness.render.cells import PHASES, pair_grid
from harness.render.markdown import markdown_table
from harness.runner.config import RunConfig
from harness.runner.failure import run_point_or_record_failure
from harness.runner.point import PointResult
from harness.results import (
    PAIRED_PROVENANCE, Provenance, arm_labels, decoding_metric, finished_flags, generations_file, pairing_problems,
    read_config, read_token_scores, read_train_counts,
)


def check_paired(a: PointResult, b: PointResult) -> dict[str, Any]:
    """Refuse arms that the one pairing rule (harness.results.pairing_problems, also the tables')
    says may not be compared; return the recorded facts they share, for the comparison's record."""
    prov_a, prov_b = Provenance.model_validate(a.provenance), Provenance.model_validate(b.provenance)
    problems = pairing_problems(read_config(a.path), prov_a, read_config(b.path), prov_b)
    if problems:
        raise HarnessError(f"arms are not paired: {'; '.join(problems)} ({a.path} vs {b.path})",
                           "run both arms with the same task, model, data, seed and hardware setup")
    return {key: getattr(prov_a, key) for key in PAIRED_PROVENANCE}


def compare_points(a: PointResult, b: PointResult, *, seed: int = 0, n_boot: int = 1000,
                   trust_remote_code: bool = False) -> dict[str, Any]:
    from harness.metrics import MetricContext, compare, needing_finished, token_ids_fn
    from harness.models import load_tokenizer

    paired_checks = check_paired(a, b)  # before any tokenizer load or bootstrap
    config_a, config_b = read_config(a.path), read_config(b.path)
    tokenizer = load_tokenizer(config_a.model, trust_remote_code=trust_remote_code)
    counts = read_train_counts(a.path, "rerun that point with --force")
    if counts is None:
        raise HarnessError(f"{a.path} has no training counts", "rerun that point with --force")
    context = MetricContext(train_counts=counts, tokenize=token_ids_fn(tokenizer))

    def compared(decoding: str | None) -> dict:
        rows_a, rows_b = (read_jsonl(p.path / generations_file(decoding)) for p in (a, b))
        if [r["id"] for r in rows_a] != [r["id"] for r in rows_b]:
            raise HarnessError(f"{a.path} and {b.path} generated for different test examples",
                               "rerun both arms with the same task config")
        metrics, flags = list(config_a.task["metrics"]), (finished_flags(rows_a), finished_flags(rows_b))
        if None in flags:  # generations from before result format 3: limit-share is not measured
            metrics, flags = [m for m in metrics if m not in needing_finished(metrics)], (None, None)
        return compare([r["prediction"] for r in rows_a], [r["prediction"] for r in rows_b],
                       [r["reference"] for r in rows_a], metrics=metrics, context=context,
                       n_boot=n_boot, seed=seed, finished_a=flags[0], finished_b=flags[1])

    paired = compared(None)
    paired.update(_likelihood(a, b, counts, n_boot=n_boot, seed=seed))
    for decoding in sorted(set(a.metrics.get("decodings") or {}) & set(b.metrics.get("decodings") or {})):
        paired.update({decoding_metric(decoding, name): replace(result, name=decoding_metric(decoding, name))
                       for name, result in compared(decoding).items()})
    labels = arm_labels([config_a.arm, config_b.arm])  # the tables' labels
    label_a, label_b = labels[config_a.arm], labels[config_b.arm]
    return {
        "task": config_a.task_name,
        "model": config_a.model,
        "a": {"label": label_a, "path": str(a.path)},
        "b": {"label": label_b, "path": str(b.path)},
        "paired_checks": paired_checks,
        "n_boot": n_boot,
        "bootstrap_seed": seed,
        "validation_ce": {"a": a.metrics.get("validation_ce"), "b": b.metrics.get("validation_ce")},
        "peak_cpu_rss_gib": {"a": (a.provenance.get("peak_memory") or {}).get("cpu_rss_gib"),
                             "b": (b.provenance.get("peak_memory") or {}).get("cpu_rss_gib")},
        "metrics": {name: result.to_dict() for name, result in paired.items()},
    }


def _likelihood(a: PointResult, b: PointResult, counts, *, n_boot: int, seed: int) -> dict:
    """The likelihood rows (test-ce, nll by frequency bucket) when both points measured them."""
    from harness.metrics.likelihood import LIKELIHOOD_ROWS, compare_likelihood, point_bucket_sums

    scores = [read_token_scores(p.path) for p in (a, b)]
    if any(s is None for s in scores) or not a.metrics.get("token_likelihood"):
        return {}
    n_buckets = a.metrics["token_likelihood"]["n_buckets"]
    sums = tuple(point_bucket_sums(s, counts, a.metrics["n_test"], n_buckets) for s in scores)
    return compare_likelihood([sums], list(LIKELIHOOD_ROWS), n_boot=n_boot, seed=seed)


def comparison_rows(comparison: dict[str, Any]) -> list[Comparison]:
    """The stored comparison (compare_points) as one row per metric: arm B against arm A."""
    labels = (comparison["a"]["label"], comparison["b"]["label"])
    seeds = (comparison["paired_checks"]["seed"],) if "seed" in comparison["paired_checks"] else ()
    return [from_paired(record, labels, seeds) for record in comparison["metrics"].values()]


def format_comparison(comparison: dict[str, Any]) -> str:
    """Markdown table: metric, A, B, delta (B - A), 95% CI of the delta, p."""
    a, b = comparison["a"]["label"], comparison["b"]["label"]
    rows = comparison_rows(comparison)
    lines = [f"## {comparison['task']} / {comparison['model']}: {b} vs {a}", "",
             markdown_table(pair_grid(rows, headers=(a, b)))]
    reference_share = comparison["metrics"].get("rare-token-share", {}).get("details", {}).get("reference_share")
    if reference_share is not None:
        lines += ["", f"rare-token-share of the references: {format_value(reference_share)} "
                  "(closer is better: the share of tokens from the rarest training-frequency bucket)"]
    ce = comparison["validation_ce"]
    if ce["a"] is not None and ce["b"] is not None:
        lines += ["", f"validation CE (plain token cross-entropy, both arms): "
                  f"{a} {format_value(ce['a'], 5)}, {b} {format_value(ce['b'], 5)}"]
    peaks = comparison.get("peak_cpu_rss_gib") or {}
    if peaks.get("a") and peaks.get("b"):
        def by_phase(label: str, peaks: dict[str, float]) -> str:
            ordered = [p for p in PHASES if p in peaks] + sorted(set(peaks) - set(PHASES))
            return f"{label} " + ", ".join(f"{phase} {format_value(peaks[phase], 3)}" for phase in ordered)

        lines += ["", f"peak CPU memory by phase (GiB, resident): {by_phase(a, peaks['a'])}; "
                  f"{by_phase(b, peaks['b'])}"]
    further = rows_legend(list(comparison["metrics"]))
    if further:
        lines += ["", further]
    n = rows[0].n if rows else 0
    lines += ["", f"paired bootstrap over {n} test examples, {comparison['n_boot']} resamples, "
              f"seed {comparison['bootstrap_seed']}; same init {comparison['paired_checks']['init_hash']}, "
              f"same data order {comparison['paired_checks']['data_order_hash']}"]
    return "\n".join(lines)


def write_comparison(comparison: dict[str, Any], a: PointResult, b: PointResult) -> Path:
    folder = a.path.parent / "comparisons"
    stem = f"{a.path.name}__vs__{b.path.name}"
    write_json_atomic(folder / f"{stem}.json", comparison)
    write_text_atomic(folder / f"{stem}.md", format_comparison(comparison) + "\n")
    return folder / f"{stem}.md"


def bench(base: RunConfig, arms: list[tuple[str, dict[str, Any]]], results_dir: Path, *,
          force: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Run every arm (the first is the baseline), then compare each other arm against it."""
    from harness.runner.dist import process_state

    results = []
    for loss, options in arms:
        run = base.model_copy(update={"loss": loss, "loss_options": options})
        results.append(run_point_or_record_failure(run, results_dir, force=force, progress=progress))
    if not process_state().is_main_process:
        return []
    comparisons = []
    baseline = results[0]
    for other in results[1:]:
        comparison = compare_points(baseline, other, seed=base.seed, trust_remote_code=base.trust_remote_code)
        comparison["report"] = str(write_comparison(comparison, baseline, other))
        comparisons.append(comparison)
    return comparisons

