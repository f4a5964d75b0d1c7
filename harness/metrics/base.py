"""The Metric record, the METRICS registry, and Batch: one arm's texts with the tokenizations metrics share.

Example-level metrics return one value per example (the suite bootstraps their mean).
Corpus-level metrics return per-example sufficient statistics (n-gram count tables, numerator and
denominator arrays) plus an `evaluate(stats, weights)` that recomputes the corpus value for every
row of an example-weight matrix at once: that is what keeps 1,000 bootstrap resamples cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np

from harness.errors import HarnessError
from harness.metrics import text
from harness.registry import Registry


@dataclass
class MetricContext:
    """Optional extras some metrics need; keep it free of other modules' classes."""

    train_counts: np.ndarray | None = None  # training-target count per token id (rare-token metrics)
    tokenize: Callable[[str], list[int]] | None = None  # text -> token ids, the model's tokenizer
    diversity_tokens: str = "words"  # "words" (documented regex rule) or "subwords" (uses `tokenize`)
    sentence_splitter: str = "auto"  # rougeLsum: "auto" (punkt if its data exists, else regex), "regex", "nltk-punkt"
    n_buckets: int = 10  # rare-token profile: buckets of equal training token mass
    self_bleu_max_outputs: int = 500  # self-BLEU is O(n^2): refuse larger output sets


def token_ids_fn(tokenizer) -> Callable[[str], list[int]]:
    """text -> the model's token ids without special tokens: how the training counts of the
    rare-token metrics were made, so every caller must tokenize this one way."""
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


class Batch:
    """Predictions and references of one arm; shared, lazily built views live in `shared()`."""

    def __init__(self, predictions: list[str], references: list[str], context: MetricContext | None = None,
                 *, workers: int = 1, wanted: frozenset[str] = frozenset(), finished: list[bool] | None = None,
                 known: dict[str, np.ndarray] | None = None):
        self.predictions = predictions
        self.references = references
        self.context = context or MetricContext()
        # Per-example values of example-level metrics scored before on these very outputs (a point's
        # example_scores.npz): used instead of computing them again (semantic similarity embeds).
        self.known = known or {}
        # Per output: True when it ended by itself, False when max_new_tokens cut it off; None: unknown.
        self.finished = None if finished is None else np.asarray(finished, dtype=bool)
        self.workers = workers
        self.wanted = wanted  # metric names requested in this call (lets ROUGE skip unrequested types)
        self._shared: dict[Any, Any] = {}

    def __len__(self) -> int:
        return len(self.predictions)

    def shared(self, key: Any, build: Callable[[], Any]) -> Any:
        """Build a value once per batch (tokenizations, n-gram tables, ROUGE scores)."""
        if key not in self._shared:
            self._shared[key] = build()
        return self._shared[key]

    @cached_property
    def prediction_tokens(self) -> list[list]:
        """Diversity tokens of each prediction: words by default, model subword ids when asked."""
        return self._diversity_tokens(self.predictions)

    @cached_property
    def reference_tokens(self) -> list[list]:
        """Diversity tokens of each reference, by the predictions' rule (length-ratio, a rarefaction budget)."""
        return self._diversity_tokens(self.references)

    def _diversity_tokens(self, texts: list[str]) -> list[list]:
        unit = self.context.diversity_tokens
        if unit == "words":
            return [text.words(t) for t in texts]
        if unit == "subwords":
            if self.context.tokenize is None:
                raise HarnessError("diversity_tokens='subwords' needs a tokenize callable",
                                   "pass MetricContext(tokenize=...) or use diversity_tokens='words'")
            return [list(self.context.tokenize(t)) for t in texts]
        raise HarnessError(f"unknown diversity_tokens {unit!r}", "use 'words' or 'subwords'")


@dataclass(frozen=True)
class Metric:
    name: str
    level: str  # "example" | "corpus"
    higher_is_better: bool | None  # None: no better direction (compare with the references instead)
    description: str
    compute: Callable[[Batch], Any]  # example: values [n]; corpus: sufficient statistics
    evaluate: Callable[[Any, np.ndarray], np.ndarray] | None = None  # corpus: (stats, W [k, n]) -> [k]
    needs: tuple[str, ...] = ()  # MetricContext fields that must be set, or "finished" (Batch.finished)
    details: Callable[[Batch], dict] | None = None  # settings worth recording (splitter, tokens...)
    bounds: tuple[float, float] = (-np.inf, np.inf)  # range of the metric; intervals are clipped to it
    # Raise it when a change alters the metric's numbers: points scored by an earlier version are
    # then out of date, and `pdl-bench rescore` recomputes them from their stored generations.
    version: int = 1
    # What besides the version fixes its per-example values on this machine under the default
    # context (rougeLsum: the sentence splitter "auto" resolves to); None when nothing does.
    machine_setting: Callable[[], str] | None = None
    # evaluate() reruns a measure on each resampled corpus (MTLD, gzip): with Batch.workers > 1 its
    # resamples are spread over worker processes (same numbers, in the same order). A worker finds
    # the metric by name in a fresh interpreter, so only a metric registered on import (a builtin,
    # an entry-point plugin) may set it; one registered at run time is refused there by name.
    spread_resamples: bool = False

    def example_key(self) -> str:
        """What example_scores.npz files its per-example values under: its version, and the machine
        setting they depend on, so values scored under another setting are computed again, never mixed."""
        setting = f"-{self.machine_setting()}" if self.machine_setting else ""
        return f"v{self.version}{setting}"

    def values(self, stats: Any, weights: np.ndarray) -> np.ndarray:
        """The metric for each row of example weights (a row of ones is the plain estimate)."""
        if self.level == "example":
            return weights @ stats / weights.sum(axis=1)
        return self.evaluate(stats, weights)

    def corpus_value(self, predictions: list[str], references: list[str],
                     context: MetricContext | None = None) -> float:
        """The metric over the whole set, without intervals."""
        batch = Batch(predictions, references, context, wanted=frozenset([self.name]))
        return float(self.values(self.compute(batch), np.ones((1, len(batch))))[0])


CONTEXT_NEEDS = ("train_counts", "tokenize")  # the MetricContext fields a metric may declare it needs
OUTPUT_NEEDS = ("finished",)  # per-output facts given beside the texts: score(finished=...)


def metric_problem(name: str, metric: object) -> str | None:
    """Why `metric` is not a valid entry named `name` (None when it is): the one check of a builtin
    (make_metric) and of a plugin's entry point (harness.registry)."""
    if not isinstance(metric, Metric):
        return f"is a {type(metric).__name__}, not a harness.metrics.base.Metric (build it with make_metric)"
    if metric.name != name:
        return f"is named {metric.name!r}, not {name!r} as its entry point"
    if metric.level not in ("example", "corpus") or (metric.level == "corpus") != (metric.evaluate is not None):
        return "corpus metrics need evaluate=, example metrics must not have it"
    if not callable(metric.compute) or any(need not in CONTEXT_NEEDS + OUTPUT_NEEDS for need in metric.needs):
        return f"needs a callable compute and `needs` among {', '.join(CONTEXT_NEEDS + OUTPUT_NEEDS)}"
    if not isinstance(metric.version, int) or isinstance(metric.version, bool) or metric.version < 1:
        return f"has version {metric.version!r}; a version is a positive integer"
    return None


def make_metric(name: str, level: str, higher_is_better: bool | None, description: str,
                compute: Callable[[Batch], Any], *, evaluate: Callable[[Any, np.ndarray], np.ndarray] | None = None,
                needs: tuple[str, ...] = (), details: Callable[[Batch], dict] | None = None,
                bounds: tuple[float, float] = (-np.inf, np.inf), version: int = 1,
                machine_setting: Callable[[], str] | None = None, spread_resamples: bool = False) -> Metric:
    """A checked Metric, not registered: what a plugin's `pdl_bench.metrics` entry point names."""
    metric = Metric(name, level, higher_is_better, description, compute, evaluate, tuple(needs), details, bounds,
                    version, machine_setting, spread_resamples)
    problem = metric_problem(name, metric)
    if problem is not None:
        raise ValueError(f"metric {name}: {problem}")
    return metric


METRICS: Registry[Metric] = Registry("metric", plugin_group="pdl_bench.metrics", check=metric_problem)


def register(name: str, level: str, higher_is_better: bool | None, description: str, *,
             evaluate: Callable[[Any, np.ndarray], np.ndarray] | None = None, needs: tuple[str, ...] = (),
             details: Callable[[Batch], dict] | None = None,
             bounds: tuple[float, float] = (-np.inf, np.inf), version: int = 1,
             machine_setting: Callable[[], str] | None = None, spread_resamples: bool = False):
    """Decorator: register `compute` as metric `name` (a builtin; a plugin ships make_metric's
    record through an entry point instead)."""

    def add(compute: Callable[[Batch], Any]) -> Callable[[Batch], Any]:
        METRICS.register(name, make_metric(name, level, higher_is_better, description, compute, evaluate=evaluate,
                                           needs=needs, details=details, bounds=bounds, version=version,
                                           machine_setting=machine_setting, spread_resamples=spread_resamples))
        return compute

    return add


def ratio_of_sums(stats: tuple[np.ndarray, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Corpus ratio sum(w * num) / sum(w * den) per weight row; 0 where the denominator is 0."""
    num, den = weights @ stats[0], weights @ stats[1]
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
