"""The direct test of PDL's claim: do generated tokens shift toward the rare end of the training data?

Token ids are bucketed by their training-target frequency into `n_buckets` buckets of equal
training token mass (bucket 0: the most frequent ids that together make the first 10% of training
tokens; the last bucket: the rarest ids making the final 10%), plus an 'unseen' bucket for ids never
seen in training (count 0, or ids beyond the count vector). For each bucket we compare the share of
generated tokens with the share of reference tokens: a model that learned rare tokens moves its
curve toward the references'.

"Rare" = the last mass bucket plus 'unseen'. Scalars:
- rare-token-share: rare tokens / all tokens in the predictions (read it next to the references').
- rare-token-recall: over all examples, rare reference tokens also produced in the same example's
  prediction (counts clipped, as in ROUGE-1) / rare reference tokens.
- freq-bucket-tvd: total variation distance between the prediction and reference bucket shares.
Inputs are a plain count vector and a `str -> list[int]` callable, so any tokenizer works.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.errors import HarnessError
from harness.metrics.base import Batch, ratio_of_sums, register


def token_buckets(train_counts: np.ndarray, n_buckets: int = 10) -> np.ndarray:
    """Bucket of every token id: 0..n_buckets-1 by cumulative training mass, n_buckets = unseen."""
    counts = _check_counts(train_counts)
    if not isinstance(n_buckets, (int, np.integer)) or n_buckets < 1:
        raise HarnessError(f"n_buckets must be a positive integer, got {n_buckets!r}", "use e.g. 10")
    ids = np.arange(counts.size)
    order = np.lexsort((ids, -counts))  # most frequent first; ties by id, so buckets are deterministic
    sorted_counts = counts[order]
    mass_before = (np.cumsum(sorted_counts) - sorted_counts) / sorted_counts.sum()
    buckets = np.empty(counts.size, dtype=np.int64)
    buckets[order] = np.minimum((mass_before * n_buckets).astype(np.int64), n_buckets - 1)
    buckets[counts == 0] = n_buckets
    return buckets


def _check_counts(train_counts: np.ndarray) -> np.ndarray:
    if train_counts is None:
        raise HarnessError("rare-token metrics need training token counts", "pass MetricContext(train_counts=...)")
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.number):
        raise HarnessError("train_counts must be a non-empty 1-D numeric array indexed by token id",
                           "count training-target tokens with np.bincount(ids, minlength=vocab_size)")
    counts = counts.astype(np.float64)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0:
        raise HarnessError("train_counts must be finite, non-negative and not all zero",
                           "count training-target tokens with np.bincount(ids, minlength=vocab_size)")
    return counts


@dataclass
class RareTokenStats:
    """Per-example sufficient statistics; every scalar is a ratio of weighted sums of these."""

    n_buckets: int
    prediction_buckets: np.ndarray  # [n, n_buckets + 1] token counts per bucket
    reference_buckets: np.ndarray
    rare_hits: np.ndarray  # [n] rare reference tokens matched in the prediction (clipped counts)
    rare_in_reference: np.ndarray  # [n]

    @property
    def rare_columns(self) -> list[int]:
        return [self.n_buckets - 1, self.n_buckets]

    def shares(self, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        pooled = weights @ buckets  # [k, n_buckets + 1]
        totals = pooled.sum(axis=1, keepdims=True)
        return np.divide(pooled, totals, out=np.zeros_like(pooled), where=totals > 0)


def rare_token_stats(predictions: list[str], references: list[str], train_counts: np.ndarray,
                     tokenize: Callable[[str], list[int]], n_buckets: int = 10) -> RareTokenStats:
    if tokenize is None:
        raise HarnessError("rare-token metrics need a tokenize callable (str -> list[int])",
                           "pass MetricContext(tokenize=...), e.g. lambda s: tok.encode(s, add_special_tokens=False)")
    buckets = token_buckets(train_counts, n_buckets)
    rare = np.zeros(n_buckets + 1, dtype=bool)
    rare[[n_buckets - 1, n_buckets]] = True
    n = len(predictions)
    pred_buckets = np.zeros((n, n_buckets + 1))
    ref_buckets = np.zeros((n, n_buckets + 1))
    hits, rare_ref = np.zeros(n), np.zeros(n)
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        pred_ids, ref_ids = _ids(tokenize, pred), _ids(tokenize, ref)
        ref_of = _bucket_of(ref_ids, buckets, n_buckets)
        pred_buckets[i] = np.bincount(_bucket_of(pred_ids, buckets, n_buckets), minlength=n_buckets + 1)
        ref_buckets[i] = np.bincount(ref_of, minlength=n_buckets + 1)
        rare_ref_ids = ref_ids[rare[ref_of]].tolist()
        pred_counts = Counter(pred_ids.tolist())
        rare_ref[i] = len(rare_ref_ids)
        hits[i] = sum(min(count, pred_counts[token]) for token, count in Counter(rare_ref_ids).items())
    return RareTokenStats(n_buckets, pred_buckets, ref_buckets, hits, rare_ref)


def _ids(tokenize: Callable[[str], list[int]], text: str) -> np.ndarray:
    ids = np.asarray(list(tokenize(text)), dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise HarnessError("tokenize returned a negative token id", "pass a tokenizer's encode function")
    return ids


def _bucket_of(ids: np.ndarray, buckets: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket per id; ids beyond the count vector (tokens added after counting) are unseen."""
    return np.where(ids < buckets.size, buckets[np.minimum(ids, buckets.size - 1)], n_buckets)


def _batch_stats(batch: Batch) -> RareTokenStats:
    ctx = batch.context
    return batch.shared("rare-tokens", lambda: rare_token_stats(
        batch.predictions, batch.references, ctx.train_counts, ctx.tokenize, ctx.n_buckets))


def _rare_share(stats: RareTokenStats, weights: np.ndarray) -> np.ndarray:
    return stats.shares(stats.prediction_buckets, weights)[:, stats.rare_columns].sum(axis=1)


def _rare_recall(stats: RareTokenStats, weights: np.ndarray) -> np.ndarray:
    return ratio_of_sums((stats.rare_hits, stats.rare_in_reference), weights)


def _tvd(stats: RareTokenStats, weights: np.ndarray) -> np.ndarray:
    pred = stats.shares(stats.prediction_buckets, weights)
    ref = stats.shares(stats.reference_buckets, weights)
    return 0.5 * np.abs(pred - ref).sum(axis=1)


def _share_details(batch: Batch) -> dict:
    stats = _batch_stats(batch)
    ones = np.ones((1, len(batch)))
    reference = stats.shares(stats.reference_buckets, ones)[0, stats.rare_columns].sum()
    return {"reference_share": float(reference), "n_buckets": stats.n_buckets}


_NEEDS = ("train_counts", "tokenize")
register("rare-token-share", "corpus", None,
         "Share of generated tokens that are rare in training (rarest 10% of training token mass, or "
         "unseen); closer to the references' share (see details) is better.",
         evaluate=_rare_share, needs=_NEEDS, details=_share_details, bounds=(0.0, 1.0))(_batch_stats)
register("rare-token-recall", "corpus", True,
         "Rare reference tokens also generated for the same example (clipped counts) / rare reference tokens.",
         evaluate=_rare_recall, needs=_NEEDS, bounds=(0.0, 1.0))(_batch_stats)
register("freq-bucket-tvd", "corpus", False,
         "Total variation distance between generated and reference token shares over training-frequency "
         "buckets (0 = same frequency profile as the references).",
         evaluate=_tvd, needs=_NEEDS, bounds=(0.0, 1.0))(_batch_stats)


def rare_token_profile(predictions: list[str], references: list[str], train_counts: np.ndarray,
                       tokenize: Callable[[str], list[int]], n_buckets: int = 10) -> dict:
    """The full per-bucket profile (JSON-able): shares of generated vs reference tokens per bucket."""
    from harness.metrics.suite import validate_inputs

    validate_inputs(predictions, references)
    stats = rare_token_stats(predictions, references, train_counts, tokenize, n_buckets)
    counts = _check_counts(train_counts)
    buckets = token_buckets(counts, n_buckets)
    ones = np.ones((1, len(predictions)))
    pred_share = stats.shares(stats.prediction_buckets, ones)[0]
    ref_share = stats.shares(stats.reference_buckets, ones)[0]
    rows = []
    for b in range(n_buckets + 1):
        members = counts[buckets == b]
        rows.append({
            "bucket": "unseen" if b == n_buckets else b,
            "training_mass": "count 0" if b == n_buckets else f"{100 * b / n_buckets:g}-{100 * (b + 1) / n_buckets:g}%",
            "token_types": int(members.size),
            "train_count_min": int(members.min()) if members.size else None,
            "train_count_max": int(members.max()) if members.size else None,
            "prediction_share": float(pred_share[b]),
            "reference_share": float(ref_share[b]),
            "prediction_tokens": int(stats.prediction_buckets[:, b].sum()),
            "reference_tokens": int(stats.reference_buckets[:, b].sum()),
        })
    return {
        "n_buckets": n_buckets,
        "bucketing": "token ids sorted by training count (most frequent first), cut into buckets of equal "
                     "training token mass; 'unseen' = count 0 or id beyond the count vector",
        "rare": "last mass bucket + unseen",
        "buckets": rows,
        "rare_token_share": {"predictions": float(pred_share[-2:].sum()), "references": float(ref_share[-2:].sum())},
        "rare_token_recall": float(_rare_recall(stats, ones)[0]),
        "freq_bucket_tvd": float(_tvd(stats, ones)[0]),
        "prediction_tokens": int(stats.prediction_buckets.sum()),
        "reference_tokens": int(stats.reference_buckets.sum()),
    }
