"""Write result folders by hand, in the runner's layout, for tests and the report's browser check.

Nothing here trains a model: generations, logs and metric values are made up by the caller (or by
`demo_tree` from a seeded RNG), so the reporting code can be checked against known numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.io import write_jsonl_atomic
from harness.results import (
    GENERATIONS_FILE, TRAIN_LOG_FILE, PointConfig, PointMetrics, Provenance, point_path,
    write_record, write_train_counts,
)

WORDS = ("the a of and to in is was he she it they king lord people city river house land day night said came "
         "went gave took saw heard spoke answered built crossed mountain valley silver bread wine shepherd "
         "vineyard harvest lantern whisper orchard meadow thunder pilgrim ember quarry citadel lattice "
         "sapphire cedar falcon tapestry").split()


class WordTokenizer:
    """A stand-in tokenizer (whitespace words -> fixed ids) with the HF call signature the report uses."""

    def __init__(self, words: tuple[str, ...] | list[str] = WORDS):
        self.ids = {w: i for i, w in enumerate(words)}

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [self.ids.get(w, len(self.ids)) for w in text.lower().split()]}


def task_config(name: str = "demo", *, max_steps: int = 40, train_limit: int = 64,
                metrics: list[str] | None = None) -> dict[str, Any]:
    """A task config dict shaped like TaskConfig.model_dump (the fields the report reads)."""
    return {
        "name": name, "kind": "summarization", "metrics": metrics or ["rouge1", "distinct-1", "distinct-2"],
        "model": "demo-model",
        "training": {"max_steps": max_steps, "num_train_epochs": 1.0, "learning_rate": 5e-5},
        "generation": {"max_new_tokens": 32, "num_beams": 1, "do_sample": False},
        "limits": {"train": train_limit, "validation": 16, "test": None, "seed": 0},
    }


def metric_record(name: str, value: float, n: int, details: dict[str, Any] | None = None) -> dict[str, Any]:
    from harness.metrics import METRICS

    known = METRICS.get(name) if name in METRICS else None
    return {"name": name, "level": known.level if known else "example",
            "higher_is_better": known.higher_is_better if known else True,
            "value": value, "ci_low": value, "ci_high": value, "n": n, "details": details or {}}


def write_point(root: Path, task: dict[str, Any], model: str, loss: str, options: dict[str, Any], seed: int, *,
                generations: list[dict[str, Any]], metric_values: dict[str, float] | None,
                validation_ce: float | None = None, train_log: list[dict] | None = None,
                train_counts: np.ndarray | None = None, profile: dict | None = None,
                global_steps: int | None = None, n_train: int | None = None,
                metric_details: dict[str, dict[str, Any]] | None = None) -> Path:
    """One point folder; metric_values=None leaves it incomplete (no metrics.json), like a crashed run.
    metric_details: a metric's recorded settings (e.g. a rarefaction budget), by metric name."""
    from harness.models import model_slug

    config = PointConfig(task=task, model=model, loss=loss, loss_options=options, seed=seed)
    path = point_path(Path(root), config, model_slug(model))
    write_record(path, config)
    write_jsonl_atomic(path / GENERATIONS_FILE, generations)
    write_jsonl_atomic(path / TRAIN_LOG_FILE, train_log or [])
    if train_counts is not None:
        write_train_counts(path, train_counts)
    write_record(path, Provenance(seed=seed, init_hash="demo", data_order_hash=f"order{seed}",
                                  global_steps=global_steps, n_examples={"train": n_train, "test": len(generations)},
                                  world_size=1, precision="fp32"))
    if metric_values is not None:
        n = len(generations)
        write_record(path, PointMetrics.model_validate({
            "metrics": {k: metric_record(k, v, n, (metric_details or {}).get(k)) for k, v in metric_values.items()},
            "rare_token_profile": profile or {}, "n_test": n, "validation_ce": validation_ce,
        }))
    return path


def add_load_time_measurements(path: Path, *, token_scores: dict[str, np.ndarray], train_counts: np.ndarray,
                               decodings: dict[str, list[dict[str, Any]]], n_buckets: int = 10,
                               tokenize=None) -> None:
    """Give a complete hand-made point what a format-3 point measures while its model is loaded:
    token_scores.npz (arrays example, token, nll, correct) with its likelihood summary, and each
    further decoding's generations file and metrics, scored with the task's metrics; and the
    training counts (train_counts.npz) they are bucketed by."""
    from types import SimpleNamespace

    from harness.io import write_jsonl_atomic as write_rows
    from harness.metrics import MetricContext, score
    from harness.metrics.likelihood import bucket_sums, likelihood_summary
    from harness.results import generations_file, read_config, read_metrics, write_token_scores

    metrics = read_metrics(path).model_dump(mode="json")
    task = read_config(path).task
    sums = bucket_sums(token_scores["example"], token_scores["token"], token_scores["nll"], token_scores["correct"],
                       train_counts, metrics["n_test"], n_buckets)
    write_token_scores(path, SimpleNamespace(**token_scores))
    write_train_counts(path, train_counts)  # the counts the scores are bucketed by, as a real point has
    metrics["token_likelihood"] = likelihood_summary(sums)
    metrics["decodings"] = {}
    for name, rows in decodings.items():
        write_rows(path / generations_file(name), rows)
        context = MetricContext(train_counts=train_counts, tokenize=tokenize)
        results = score([r["prediction"] for r in rows], [r["reference"] for r in rows], metrics=task["metrics"],
                        context=context, n_boot=0, seed=0)
        metrics["decodings"][name] = {"settings": {"do_sample": True}, "n_test": len(rows),
                                      "metrics": {k: metric_record(k, r.value, len(rows)) for k, r in results.items()}}
    metrics["format"] = 3
    write_record(path, PointMetrics.model_validate(metrics))


def demo_generations(rng: np.random.Generator, n: int, richness: float) -> list[dict[str, Any]]:
    """Hand-rolled outputs: `richness` in [0, 1] draws more of the rare words (a stand-in for PDL).

    References depend on the example only (every arm and seed shares them, as in real runs).
    """
    common, rare = WORDS[:20], WORDS[20:]
    rows = []
    for i in range(n):
        ref_rng = np.random.default_rng([7, i])
        reference = " ".join(ref_rng.choice(common if ref_rng.random() < 0.7 else rare) for _ in range(12))
        length = int(rng.integers(6, 14))
        words = [rng.choice(rare) if rng.random() < 0.1 + 0.5 * richness else rng.choice(common[:8 + int(12 * richness)])
                 for _ in range(length)]
        rows.append({"id": f"test-{i}", "prediction": " ".join(words), "reference": reference})
    return rows


def demo_tree(root: Path, *, seeds: tuple[int, ...] = (0, 1), alphas: tuple[float, ...] = (0.25, 0.5, 1.0),
              n_test: int = 30, steps: int = 40, with_partial: bool = True) -> Path:
    """A small, plausible results tree scored with the real metrics (word tokenizer for rare tokens)."""
    from harness.metrics import MetricContext, rare_token_profile, score

    tokenizer = WordTokenizer()
    tokenize = lambda text: tokenizer(text)["input_ids"]  # noqa: E731
    task = task_config(max_steps=steps, metrics=["rouge1", "rouge2", "rougeL", "distinct-1", "distinct-2",
                                                 "ngram-entropy-2", "seq-rep-4", "mean-length",
                                                 "rare-token-share", "rare-token-recall"])
    counts = np.array([400 - 6 * i for i in range(len(WORDS))] + [0], dtype=np.int64)
    arms = [("ce", {})] + [("pdl", {"alpha": a, "normalization": "batch_weight_sum"}) for a in alphas]
    for seed in seeds:
        for loss, options in arms:
            richness = options.get("alpha", 0.0) / max(alphas)
            rng = np.random.default_rng([seed, int(100 * richness)])
            rows = demo_generations(rng, n_test, richness)
            preds, refs = [r["prediction"] for r in rows], [r["reference"] for r in rows]
            context = MetricContext(train_counts=counts, tokenize=tokenize)
            results = score(preds, refs, metrics=task["metrics"], context=context, n_boot=0, seed=seed)
            scale = 1.0 if loss == "ce" else 40.0 * (1 + options["alpha"])
            log = [{"step": s, "epoch": s / steps, "loss": scale * (3.0 * np.exp(-s / 15) + 1.2 + 0.05 * rng.random()),
                    "learning_rate": 5e-5 * (1 - s / steps)} for s in range(2, steps + 1, 2)]
            log += [{"step": s, "eval_loss": 2.2 + 1.5 * np.exp(-s / 12) + 0.1 * richness} for s in range(10, steps + 1, 10)]
            write_point(root, task, "demo/Demo-LM", loss, options, seed, generations=rows,
                        metric_values={k: r.value for k, r in results.items()},
                        validation_ce=2.25 + 0.1 * richness + 0.01 * seed, train_log=log, train_counts=counts,
                        profile=rare_token_profile(preds, refs, counts, tokenize, n_buckets=5),
                        global_steps=steps, n_train=64)
    if with_partial:
        rng = np.random.default_rng(99)
        write_point(root, task, "demo/Demo-LM", "pdl", {"alpha": 1.5, "normalization": "batch_weight_sum"}, 0,
                    generations=demo_generations(rng, n_test, 1.0), metric_values=None)
    return Path(root)


def demo_tokenizer_loader(model: str) -> WordTokenizer:
    return WordTokenizer()


__all__ = ["WORDS", "WordTokenizer", "add_load_time_measurements", "demo_generations", "demo_tokenizer_loader", "demo_tree", "metric_record",
           "task_config", "write_point"]

