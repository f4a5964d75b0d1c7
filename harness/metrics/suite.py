"""score() and compare(): every requested metric with a seeded bootstrap 95% interval.

One resample-index matrix is drawn per call and shared by every metric (and by both arms in
compare), so numbers are reproducible for a seed and comparisons are paired. See harness/stats.py
for the interval and p-value definitions.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from harness import stats
from harness.errors import HarnessError
from harness.metrics.base import CONTEXT_NEEDS, METRICS, OUTPUT_NEEDS, Batch, Metric, MetricContext
from harness.workers import process_pool, worth_spreading

DEFAULT_METRICS: list[str] = [
    "rouge1", "rouge2", "rougeL", "rougeLsum",
    "distinct-1", "distinct-2", "distinct-3",
    "distinct-1-per-sample", "distinct-2-per-sample", "distinct-3-per-sample",
    "ngram-entropy-1", "ngram-entropy-2", "ngram-entropy-3", "ngram-entropy-4",
    "seq-rep-4", "mean-length", "vocab-size",
]
# Opt-in (a task's `metrics:`): diversity that does not rise as outputs shorten, and length and
# degeneration, which every diversity claim must be read next to (docs/metrics.md).
LENGTH_ROBUST_METRICS: list[str] = ["rarefied-distinct-1", "rarefied-distinct-2", "mtld", "mattr", "compression-ratio"]
LENGTH_METRICS: list[str] = ["length-ratio", "empty-share", "loop-share", "limit-share"]
# Added to the defaults when the context carries training counts and a tokenize callable.
RARE_TOKEN_METRICS: list[str] = ["rare-token-share", "rare-token-recall", "freq-bucket-tvd"]


@dataclass
class MetricResult:
    name: str
    level: str
    higher_is_better: bool | None
    value: float
    ci_low: float
    ci_high: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)
    version: int = 1  # the metric's definition version (harness.metrics.base.Metric.version)
    # an example-level metric's value per example (what its mean and interval come from); not in to_dict
    examples: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe({k: v for k, v in asdict(self).items() if k != "examples"})


@dataclass
class PairedResult:
    name: str
    higher_is_better: bool | None
    a: float
    b: float
    delta: float  # b - a
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    level: str = "example"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (no interval when n_boot=0) becomes null, so the JSON is standard."""
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}


def validate_inputs(predictions: Any, references: Any, *, label: str = "predictions") -> None:
    """One clear error for each kind of bad input; empty strings are valid outputs."""
    for name, texts in ((label, predictions), ("references", references)):
        if texts is None:
            raise HarnessError(f"{name} is None", f"pass a list of strings as {name}")
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise HarnessError(f"{name} must be a list of strings, got {type(texts).__name__}",
                               f"wrap the texts in a list: {name}=[...]")
        if len(texts) == 0:
            raise HarnessError(f"{name} is empty", "score at least one example")
        for i, item in enumerate(texts):
            if not isinstance(item, str):
                raise HarnessError(f"{name}[{i}] is {type(item).__name__}, not a string",
                                   "replace missing outputs by '' (an empty output) or drop the example")
    if len(predictions) != len(references):
        raise HarnessError(f"{len(predictions)} {label} but {len(references)} references",
                           "pass exactly one reference per prediction, in the same order")


def resolve_metrics(metrics: list[str] | None, context: MetricContext | None, *,
                    finished: bool = False) -> list[Metric]:
    """The Metric records to run; the defaults gain the rare-token metrics when the context allows.
    `finished`: whether the call has per-output finished flags (limit-share needs them)."""
    context = context or MetricContext()
    if metrics is None:
        names = list(DEFAULT_METRICS)
        if context.train_counts is not None and context.tokenize is not None:
            names += RARE_TOKEN_METRICS
    else:
        if isinstance(metrics, str) or not metrics:
            raise HarnessError("metrics must be a non-empty list of metric names",
                               f"e.g. metrics=['rouge1', 'distinct-2']; known: {', '.join(METRICS.names())}")
        names = list(dict.fromkeys(metrics))
    chosen = [METRICS.get(name) for name in names]
    for metric in chosen:
        if "finished" in metric.needs and not finished:
            raise HarnessError(f"metric {metric.name} needs each output's finished flag (did it stop by itself, "
                               "or did max_new_tokens cut it off?)",
                               "pass finished=[...] (generations.jsonl rows: stopped == 'eos') or drop the metric")
        missing = [need for need in metric.needs if need in CONTEXT_NEEDS and getattr(context, need) is None]
        if missing:
            raise HarnessError(f"metric {metric.name} needs {', '.join(missing)} in the MetricContext",
                               "pass MetricContext(train_counts=np.ndarray, tokenize=callable) or drop the metric")
    return chosen


def checked_finished(finished: Any, n: int, label: str = "finished") -> list[bool] | None:
    """Per-output finished flags as a list of n bools (None stays None: not known)."""
    if finished is None:
        return None
    if (not isinstance(finished, (list, tuple, np.ndarray)) or len(finished) != n
            or not all(isinstance(f, (bool, np.bool_)) for f in finished)):
        raise HarnessError(f"{label} must be a list of {n} booleans, one per prediction",
                           "True where the output ended by itself, False where max_new_tokens cut it off")
    return [bool(f) for f in finished]


def needing_finished(names: list[str]) -> list[str]:
    """The metrics among `names` that need each output's finished flag (limit-share): left out,
    as not measured, where the generations do not record how outputs ended."""
    return [name for name in names if "finished" in METRICS.get(name).needs]


def _check_settings(n_boot: int, workers: int) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise HarnessError(f"n_boot must be a non-negative integer, got {n_boot!r}", "use e.g. 1000")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise HarnessError(f"workers must be a positive integer, got {workers!r}", "use 1 or the number of cores")


def estimates(metrics: list[Metric], batch: Batch, indices: np.ndarray,
              examples: dict[str, np.ndarray] | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Each metric's point estimate (every example once) and its values on the resamples in `indices`;
    `examples`, when given, receives each example-level metric's per-example values.

    Reports compare every arm with the same baseline outputs, so a metric that reads only the texts
    (no training counts, tokenizer or finished flags) is remembered for the same texts, settings and
    resamples (MTLD and semantic similarity cost seconds per call): same inputs, same numbers. An
    example-level metric whose per-example values the batch already knows (`Batch.known`) is not
    computed again."""
    point, reps, todo = {}, {}, []
    cached: dict[str, np.ndarray] = {}
    # hashed once per call and shared by every remembered metric's key (none when no metric is remembered)
    inputs = _memo_inputs(batch, indices) if any(not m.needs for m in metrics) else ()
    keys = {m.name: None if m.needs else (m.name, m.version, id(m.compute), *inputs) for m in metrics}
    for m in metrics:
        if keys[m.name] in _ESTIMATES:
            point[m.name], reps[m.name], cached[m.name] = _ESTIMATES[keys[m.name]]
        else:
            todo.append(m)
    known = {m.name: _known(m, batch) for m in todo}
    computed = {m.name: known[m.name] if known[m.name] is not None else m.compute(batch) for m in todo}
    spread = {m.name: _spread_replicates(m.name, computed[m.name], indices, batch.workers)
              for m in todo if m.spread_resamples and worth_spreading(len(indices), batch.workers)}
    ones = np.ones((1, len(batch)))
    point.update({m.name: float(m.values(computed[m.name], ones)[0]) for m in todo})
    reps.update(stats.replicates({m.name: partial(m.values, computed[m.name]) for m in todo if m.name not in spread},
                                 indices))
    reps.update({name: np.concatenate([block.result() for block in blocks]) for name, blocks in spread.items()})
    for m in todo:
        per_example = np.asarray(computed[m.name], dtype=np.float64) if m.level == "example" else None
        cached[m.name] = per_example
        if keys[m.name] is not None:
            _ESTIMATES[keys[m.name]] = (point[m.name], reps[m.name], per_example)
            if len(_ESTIMATES) > _ESTIMATES_KEPT:
                _ESTIMATES.pop(next(iter(_ESTIMATES)))
    if examples is not None:
        examples.update({name: values for name, values in cached.items() if values is not None})
    return {m.name: point[m.name] for m in metrics}, {m.name: reps[m.name] for m in metrics}


def _spread_replicates(name: str, computed: Any, indices: np.ndarray, workers: int) -> list[Future]:
    """The resamples in `workers` contiguous blocks, each computed by a worker process while this
    one goes on with the other metrics; concatenated in order they are the serial replicates."""
    pool = process_pool(workers)
    return [pool.submit(_replicates_of, name, computed, block) for block in np.array_split(indices, workers)]


def _replicates_of(name: str, computed: Any, indices: np.ndarray) -> np.ndarray:
    """In a worker: the registered metric `name` on each resample, by the serial path's own code."""
    if name not in METRICS:
        raise HarnessError(f"metric {name!r} sets spread_resamples but is not registered in a fresh process "
                           "(worker processes find metrics by name)",
                           "register it in a module loaded through the pdl_bench.metrics entry point, "
                           "or drop spread_resamples, or pass --workers 1")
    metric = METRICS.get(name)
    return stats.replicates({name: partial(metric.values, computed)}, indices)[name]


def _known(metric: Metric, batch: Batch) -> np.ndarray | None:
    """The batch's stored per-example values of an example-level metric, when it has them for every
    example and the metric reads nothing but the texts and how they ended (a metric that reads the
    training counts or a tokenizer is computed with the context given here)."""
    if metric.level != "example" or not set(metric.needs) <= set(OUTPUT_NEEDS):
        return None
    context = batch.context
    if (context.diversity_tokens, context.sentence_splitter) != ("words", "auto"):
        return None  # stored values were scored with the defaults (words, the automatic sentence splitter)
    values = batch.known.get(metric.name)
    return values if values is not None and len(values) == len(batch) else None


_ESTIMATES: dict[tuple, tuple[float, np.ndarray, np.ndarray | None]] = {}  # oldest first
_ESTIMATES_KEPT = 512


def forget_estimates() -> None:
    """Drop the remembered estimates: a benchmark that times the same texts twice must compute them
    twice (and a test that must be able to fail, too)."""
    _ESTIMATES.clear()


def _memo_inputs(batch: Batch, indices: np.ndarray) -> tuple:
    """What fixes a text-only metric's estimates besides the metric itself (one that reads training
    counts, a tokenizer or finished flags declares it in `needs` and is not remembered)."""
    texts = hashlib.sha256(json.dumps([batch.predictions, batch.references]).encode()).hexdigest()
    resamples = hashlib.sha256(indices.tobytes() + str(indices.shape).encode()).hexdigest()
    context = batch.context
    # the tokenizer object itself (kept alive by the key, so its id cannot be reused); words need none
    subwords = context.tokenize if context.diversity_tokens == "subwords" else None
    settings = (context.diversity_tokens, subwords, context.sentence_splitter, context.n_buckets,
                context.self_bleu_max_outputs)
    return texts, resamples, settings


def _details(metrics: list[Metric], batch: Batch) -> dict[str, dict]:
    return {m.name: (m.details(batch) if m.details else {}) for m in metrics}


def score(predictions: list[str], references: list[str], *, metrics: list[str] | None = None,
          context: MetricContext | None = None, n_boot: int = 1000, seed: int = 0,
          workers: int = 1, finished: list[bool] | None = None) -> dict[str, MetricResult]:
    """Each metric's value with a seeded bootstrap 95% interval (see harness/stats.py).
    `finished`: per output, whether it ended by itself (limit-share needs it)."""
    validate_inputs(predictions, references)
    _check_settings(n_boot, workers)
    finished = checked_finished(finished, len(predictions))
    chosen = resolve_metrics(metrics, context, finished=finished is not None)
    batch = Batch(list(predictions), list(references), context, workers=workers,
                  wanted=frozenset(m.name for m in chosen), finished=finished)
    examples: dict[str, np.ndarray] = {}
    point, reps = estimates(chosen, batch, stats.resample_indices(len(batch), n_boot, seed), examples)
    details = _details(chosen, batch)
    results = {}
    for m in chosen:
        low, high = stats.interval(reps[m.name], point[m.name], bias_shift=m.level == "corpus", bounds=m.bounds)
        results[m.name] = MetricResult(m.name, m.level, m.higher_is_better, point[m.name], low, high,
                                       len(batch), details[m.name], m.version, examples.get(m.name))
    return results


def compare(predictions_a: list[str], predictions_b: list[str], references: list[str], *,
            metrics: list[str] | None = None, context: MetricContext | None = None, n_boot: int = 1000,
            seed: int = 0, workers: int = 1, finished_a: list[bool] | None = None,
            finished_b: list[bool] | None = None, known_a: dict[str, np.ndarray] | None = None,
            known_b: dict[str, np.ndarray] | None = None) -> dict[str, PairedResult]:
    """B - A for each metric with a paired bootstrap (same resampled examples for both arms).
    `finished_a`, `finished_b`: each arm's per-output finished flags, both or neither (limit-share).
    `known_a`, `known_b`: per-example values scored before on these outputs (Batch.known)."""
    validate_inputs(predictions_a, references, label="predictions_a")
    validate_inputs(predictions_b, references, label="predictions_b")
    _check_settings(n_boot, workers)
    finished_a, finished_b = (checked_finished(f, len(references), label)
                              for f, label in ((finished_a, "finished_a"), (finished_b, "finished_b")))
    if (finished_a is None) != (finished_b is None):
        raise HarnessError("finished flags were given for one arm only", "pass finished_a and finished_b, or neither")
    chosen = resolve_metrics(metrics, context, finished=finished_a is not None)
    wanted = frozenset(m.name for m in chosen)
    batch_a = Batch(list(predictions_a), list(references), context, workers=workers, wanted=wanted, finished=finished_a,
                    known=known_a)
    batch_b = Batch(list(predictions_b), list(references), context, workers=workers, wanted=wanted, finished=finished_b,
                    known=known_b)
    indices = stats.resample_indices(len(references), n_boot, seed)
    point_a, reps_a = estimates(chosen, batch_a, indices)
    point_b, reps_b = estimates(chosen, batch_b, indices)
    details = _details(chosen, batch_a)
    return {m.name: paired_result(m, point_a[m.name], point_b[m.name], reps_b[m.name] - reps_a[m.name],
                                  len(references), details[m.name])
            for m in chosen}


def paired_result(metric: Metric, a: float, b: float, delta_reps: np.ndarray, n: int,
                  details: dict[str, Any] | None = None) -> PairedResult:
    """B - A for one metric from both point estimates and the paired replicates of the delta;
    shared by compare() and the seed-averaged report tables so both publish the same statistic."""
    summary = stats.summarize_paired(a, b, delta_reps, bias_shift=metric.level == "corpus")
    return PairedResult(metric.name, metric.higher_is_better, a, b, n=n, level=metric.level,
                        details=details or {}, **summary)
