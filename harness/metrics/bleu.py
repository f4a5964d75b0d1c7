"""Corpus BLEU and chrF (sacrebleu, default settings), the standard quality metrics for style transfer.

Both are corpus-level: sacrebleu sums per-sentence sufficient statistics over the corpus and applies
the formula once (BLEU: hypothesis and closest reference length, matched and total n-grams for
n = 1..4; chrF: hypothesis, reference and matched character n-grams for n = 1..6). Those per-sentence
statistics are the per-example statistics here, so a bootstrap resample is scored by sacrebleu's own
formula on the weighted sums `W @ stats`: exactly the corpus score of the resampled sentences.
One reference per example; empty predictions and references are valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.metrics.base import Batch, register


@dataclass
class SacrebleuStats:
    """Per-example sufficient statistics [n, k] and the sacrebleu metric object that turns sums of them into a score."""

    metric: Any  # sacrebleu.metrics.BLEU or CHRF (default settings)
    table: np.ndarray  # [n, k] integer counts, stored as float64 for the weight products


def _new_metric(name: str) -> Any:
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU() if name == "bleu" else CHRF()


def sacrebleu_stats(name: str, predictions: list[str], references: list[str]) -> SacrebleuStats:
    """sacrebleu's per-sentence statistics of each (prediction, reference) pair, `name` 'bleu' or 'chrf'."""
    metric = _new_metric(name)
    rows = metric._extract_corpus_statistics(list(predictions), [list(references)])
    return SacrebleuStats(metric, np.asarray(rows, dtype=np.float64).reshape(len(predictions), -1))


def _evaluate(stats: SacrebleuStats, weights: np.ndarray) -> np.ndarray:
    """sacrebleu's corpus formula on the weighted sums of statistics, one score per weight row.

    Weights are resample counts, so every sum is an integer held exactly in float64.
    """
    pooled = weights @ stats.table
    return np.array([stats.metric._compute_score_from_stats(row.tolist()).score for row in pooled])


def _batch_stats(name: str):
    def compute(batch: Batch) -> SacrebleuStats:
        return batch.shared(("sacrebleu", name),
                            lambda: sacrebleu_stats(name, batch.predictions, batch.references))
    return compute


def _details(name: str):
    def details(batch: Batch) -> dict:
        stats = _batch_stats(name)(batch)
        return {"signature": str(stats.metric.get_signature())}
    return details


register("bleu", "corpus", True,
         "Corpus BLEU (sacrebleu defaults, 0-100): 13a tokenization (mteval-v13a: punctuation split off, "
         "case kept), n-grams 1-4, brevity penalty, 'exp' smoothing; one reference per example.",
         evaluate=_evaluate, details=_details("bleu"), bounds=(0.0, 100.0))(_batch_stats("bleu"))
register("chrf", "corpus", True,
         "Corpus chrF2 (sacrebleu defaults, 0-100): character n-grams 1-6 with whitespace removed, "
         "beta 2 (recall weighted twice), no word n-grams, case kept; one reference per example.",
         evaluate=_evaluate, details=_details("chrf"), bounds=(0.0, 100.0))(_batch_stats("chrf"))
