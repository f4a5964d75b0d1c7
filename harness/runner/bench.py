"""Paired comparison: CE and PDL (or any two losses) from the same init, seed and data order.

The comparison is rebuilt from the two points' folders alone (generations + training counts), so it
can be redone on a CPU without the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import read_json, read_jsonl, read_npy, write_json_atomic, write_text_atomic
from harness.runner.config import RunConfig
from harness.runner.point import PointResult, run_point
from harness.runner.store import CONFIG_FILE, GENERATIONS_FILE, TRAIN_COUNTS_FILE
from harness.stats import format_p_value


PAIRED_PROVENANCE = ("init_hash", "data_order_hash", "seed", "precision", "training_path", "world_size")


def check_paired(a: PointResult, b: PointResult, config_a: dict, config_b: dict) -> dict[str, Any]:
    """The two arms must differ only in the loss: the same resolved config otherwise (task,
    prompts, budget, model, data), and the same initial weights, data order, seed, precision,
    training path and number of processes as recorded when they ran."""
    from harness.report.collect import shared_config  # the tables group arms by the same rule

    shared_a, shared_b = shared_config(config_a), shared_config(config_b)
    differing = sorted(k for k in set(shared_a) | set(shared_b) if shared_a.get(k) != shared_b.get(k))
    if differing:
        raise HarnessError(f"arms are not paired: their configs differ in {', '.join(differing)} "
                           f"({a.path} vs {b.path})", "run both arms with the same task, model, data and seed")
    checks = {}
    for key in PAIRED_PROVENANCE:
        left, right = a.provenance.get(key), b.provenance.get(key)
        if left != right:
            raise HarnessError(
                f"arms are not paired: {key} differs ({left} vs {right}) between {a.path} and {b.path}",
                "both arms must use the same model, seed, task config, data and hardware setup",
            )
        checks[key] = left
    return checks


def two_arm_labels(config_a: dict, config_b: dict) -> tuple[str, str]:
    """The same short labels the tables use (`ce`, `pdl(alpha=1)`, plus what tells twins apart)."""
    from harness.report.collect import arm_labels

    arms = [(c["loss"], json.dumps(c["loss_options"], sort_keys=True)) for c in (config_a, config_b)]
    labels = arm_labels(arms)
    return labels[arms[0]], labels[arms[1]]


def compare_points(a: PointResult, b: PointResult, *, seed: int = 0, n_boot: int = 1000,
                   trust_remote_code: bool = False) -> dict[str, Any]:
    from harness.metrics import MetricContext, compare, token_ids_fn
    from harness.models import load_tokenizer

    config_a, config_b = read_json(a.path / CONFIG_FILE), read_json(b.path / CONFIG_FILE)
    rows_a, rows_b = read_jsonl(a.path / GENERATIONS_FILE), read_jsonl(b.path / GENERATIONS_FILE)
    if [r["id"] for r in rows_a] != [r["id"] for r in rows_b]:
        raise HarnessError(f"{a.path} and {b.path} generated for different test examples",
                           "rerun both arms with the same task config")
    tokenizer = load_tokenizer(config_a["model"], trust_remote_code=trust_remote_code)
    counts = read_npy(a.path / TRAIN_COUNTS_FILE, "rerun that point with --force")
    context = MetricContext(train_counts=counts, tokenize=token_ids_fn(tokenizer))
    paired = compare(
        [r["prediction"] for r in rows_a], [r["prediction"] for r in rows_b], [r["reference"] for r in rows_a],
        metrics=config_a["task"]["metrics"], context=context, n_boot=n_boot, seed=seed,
    )
    label_a, label_b = two_arm_labels(config_a, config_b)
    return {
        "task": config_a["task"]["name"],
        "model": config_a["model"],
        "a": {"label": label_a, "path": str(a.path)},
        "b": {"label": label_b, "path": str(b.path)},
        "paired_checks": check_paired(a, b, config_a, config_b),
        "n_boot": n_boot,
        "bootstrap_seed": seed,
        "validation_ce": {"a": a.metrics.get("validation_ce"), "b": b.metrics.get("validation_ce")},
        "metrics": {name: result.to_dict() for name, result in paired.items()},
    }


def format_comparison(comparison: dict[str, Any]) -> str:
    """Markdown table: metric, A, B, delta (B - A), 95% CI of the delta, p."""
    a, b = comparison["a"]["label"], comparison["b"]["label"]
    lines = [
        f"## {comparison['task']} / {comparison['model']}: {b} vs {a}",
        "",
        f"| metric | {a} | {b} | delta | 95% CI | p |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in comparison["metrics"].items():
        arrow = {True: " ↑", False: " ↓"}.get(m["higher_is_better"], "")
        lines.append(
            f"| {name}{arrow} | {m['a']:.4g} | {m['b']:.4g} | {m['delta']:+.4g} | "
            f"[{m['ci_low']:+.4g}, {m['ci_high']:+.4g}] | {format_p_value(m['p_value'])} |"
        )
    reference_share = comparison["metrics"].get("rare-token-share", {}).get("details", {}).get("reference_share")
    if reference_share is not None:
        lines += ["", f"rare-token-share of the references: {reference_share:.4g} "
                  "(closer is better: the share of tokens from the rarest training-frequency bucket)"]
    ce = comparison["validation_ce"]
    if ce["a"] is not None and ce["b"] is not None:
        lines += ["", f"validation CE (plain token cross-entropy, both arms): {a} {ce['a']:.4f}, {b} {ce['b']:.4f}"]
    n = next(iter(comparison["metrics"].values()), {}).get("n", 0)
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
        results.append(run_point(run, results_dir, force=force, progress=progress))
    if not process_state().is_main_process:
        return []
    comparisons = []
    baseline = results[0]
    for other in results[1:]:
        comparison = compare_points(baseline, other, seed=base.seed, trust_remote_code=base.trust_remote_code)
        comparison["report"] = str(write_comparison(comparison, baseline, other))
        comparisons.append(comparison)
    return comparisons

