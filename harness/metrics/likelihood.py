"""Likelihood by training frequency, teacher-forced: the direct test of PDL's mechanism.

PDL weights rare target tokens up so that the model predicts them better. Here every reference
target token of the test split (scored under teacher forcing, harness.runner.evaluation.token_scores)
goes into the training-frequency bucket the rare-token profile uses (`token_buckets`: buckets of
equal training token mass, most frequent first, plus 'unseen'), and per bucket we report the mean
NLL, the top-1 accuracy and the mean probability of the reference token. Decoding plays no part.

Per-example, per-bucket sums are the sufficient statistics: every bucket value is a ratio of sums
over examples, so the paired bootstrap over test examples (shared by every seed, as in
harness.metrics.paired) recomputes it for any resample at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness import stats
from harness.errors import HarnessError
from harness.metrics.rare_tokens import _bucket_of, _check_counts, token_buckets
from harness.results import NOT_MEASURED, split_decoding

QUANTITIES = ("nll", "accuracy", "probability")  # what a bucket reports: mean of each over its tokens


@dataclass(frozen=True)
class LikelihoodRow:
    """One comparison row of the likelihood: a quantity's mean over one bucket's tokens (or all)."""

    quantity: str  # one of QUANTITIES
    bucket: str  # "all" (every reference token), "most frequent" (bucket 0), "rarest" (the last mass bucket)
    higher_is_better: bool


# The rows tables and bench show (the verdict page draws every bucket).
LIKELIHOOD_ROWS = {
    "test-ce": LikelihoodRow("nll", "all", False),
    "nll-most-frequent": LikelihoodRow("nll", "most frequent", False),
    "nll-rarest": LikelihoodRow("nll", "rarest", False),
    "top1-rarest": LikelihoodRow("accuracy", "rarest", True),
}


def bucket_index(row: LikelihoodRow, n_buckets: int) -> int | None:
    """The row's bucket column (None: every token pooled)."""
    return {"all": None, "most frequent": 0, "rarest": n_buckets - 1}[row.bucket]


@dataclass(frozen=True)
class BucketSums:
    """Per test example (rows) and bucket (columns, the last one 'unseen'): how many reference
    target tokens, and the sums of their NLL, top-1 hits and probabilities."""

    n_buckets: int
    tokens: np.ndarray  # [n, n_buckets + 1]
    nll: np.ndarray
    accuracy: np.ndarray  # sums of 0/1 hits
    probability: np.ndarray

    def pooled(self) -> "BucketSums":
        """Every bucket in one (n_buckets 0): its mean NLL is the teacher-forced CE."""
        return BucketSums(0, *(getattr(self, k).sum(axis=1, keepdims=True)
                               for k in ("tokens", "nll", "accuracy", "probability")))

    def mean(self, quantity: str, weights: np.ndarray | None = None) -> np.ndarray:
        """Per bucket, the quantity's mean over the tokens of the examples in `weights` [k, n]
        (every example once by default): [k, n_buckets + 1], NaN where a bucket has no token, so a
        bootstrap resample that draws none of a sparse bucket's tokens is dropped (stats.interval),
        not counted as a zero delta."""
        if quantity not in QUANTITIES:
            raise HarnessError(f"unknown likelihood quantity {quantity!r}", f"use one of {', '.join(QUANTITIES)}")
        weights = np.ones((1, self.tokens.shape[0])) if weights is None else weights
        sums = getattr(self, quantity)
        nums = [weights @ sums[:, b] for b in range(self.n_buckets + 1)]  # one bucket at a time, as stored
        dens = [weights @ self.tokens[:, b] for b in range(self.n_buckets + 1)]
        return np.stack([np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)
                         for num, den in zip(nums, dens)], axis=1)


def bucket_label(bucket: int, n_buckets: int) -> int | str:
    """How a bucket is named in files and tables: its index, or 'unseen' (as the rare-token profile)."""
    return "unseen" if bucket == n_buckets else bucket


def bucket_sums(example: np.ndarray, token: np.ndarray, nll: np.ndarray, correct: np.ndarray,
                train_counts: np.ndarray, n_examples: int, n_buckets: int = 10) -> BucketSums:
    """Pool per-token scores (example row, token id, NLL, top-1 hit) into per-example bucket sums."""
    example, token = np.asarray(example, dtype=np.int64), np.asarray(token, dtype=np.int64)
    nll, correct = np.asarray(nll, dtype=np.float64), np.asarray(correct, dtype=bool)
    if not (example.shape == token.shape == nll.shape == correct.shape) or example.ndim != 1:
        raise HarnessError("token scores must be four 1-D arrays of one length",
                           "pass the example, token, nll and correct arrays of one TokenScores")
    if example.size and (example.min() < 0 or example.max() >= n_examples):
        raise HarnessError(f"token scores name examples outside 0..{n_examples - 1}",
                           "score the same test split whose examples you count")
    if not np.all(np.isfinite(nll)):
        raise HarnessError("token scores hold a non-finite NLL", "the model produced NaN/inf logits; check it")
    buckets = _bucket_of(token, token_buckets(_check_counts(train_counts), n_buckets), n_buckets)
    width = n_buckets + 1
    cell = example * width + buckets

    def pooled(values: np.ndarray) -> np.ndarray:
        return np.bincount(cell, weights=values, minlength=n_examples * width).reshape(n_examples, width)

    return BucketSums(n_buckets, pooled(np.ones_like(nll)), pooled(nll), pooled(correct.astype(np.float64)),
                      pooled(np.exp(-nll)))


def likelihood_summary(sums: BucketSums) -> dict:
    """The JSON-able record a point's metrics.json holds: per bucket its token count and the mean
    NLL, accuracy and probability of the reference tokens (None where it has no token), and the
    test CE, the pooled buckets' mean NLL (as the test-ce deltas read it; None without tokens)."""
    means = {q: sums.mean(q)[0] for q in QUANTITIES}
    pooled_nll = float(sums.pooled().mean("nll")[0, 0])
    test_ce = pooled_nll if np.isfinite(pooled_nll) else None
    counts = sums.tokens.sum(axis=0)
    rows = [{"bucket": bucket_label(b, sums.n_buckets), "n_tokens": int(counts[b]),
             **{q: float(means[q][b]) if counts[b] else None for q in QUANTITIES}}
            for b in range(sums.n_buckets + 1)]
    return {"n_buckets": sums.n_buckets, "n_tokens": int(counts.sum()), "test_ce": test_ce, "buckets": rows}


def paired_bucket_deltas(runs: list[tuple[BucketSums, BucketSums]], quantity: str, *, n_boot: int,
                         seed: int) -> list[dict]:
    """Per bucket, arm B - arm A of the quantity's mean, averaged over seeds (one (A, B) pair per
    seed, all on the same test examples), with the paired bootstrap interval and p-value over test
    examples: one resample shared by every seed and bucket, as harness.metrics.paired does for the
    text metrics, and with several seeds each seed's delta and the hierarchical interval
    (stats.summarize_seeds) as they get them. A bucket that one arm pair leaves without tokens has
    no delta (None)."""
    n = runs[0][0].tokens.shape[0]
    if any(a.tokens.shape != b.tokens.shape or a.tokens.shape[0] != n for a, b in runs):
        raise HarnessError("paired likelihood tables differ in examples or buckets",
                           "compare points scored on the same test split with the same buckets")
    width = runs[0][0].n_buckets + 1
    indices = stats.resample_indices(n, n_boot, seed)
    means_a = np.stack([a.mean(quantity)[0] for a, _ in runs])  # [seeds, buckets]
    means_b = np.stack([b.mean(quantity)[0] for _, b in runs])
    per_seed = np.stack([_delta_replicates(a, b, quantity, indices) for a, b in runs])  # [seeds, n_boot, buckets]
    mean_a, mean_b, reps = means_a.mean(axis=0), means_b.mean(axis=0), per_seed.mean(axis=0)
    present = np.all([(a.tokens.sum(axis=0) > 0) & (b.tokens.sum(axis=0) > 0) for a, b in runs], axis=0)
    out = []
    for bucket in range(width):
        row = {"bucket": bucket_label(bucket, width - 1)}
        if present[bucket]:
            row.update(a=float(mean_a[bucket]), b=float(mean_b[bucket]),
                       **stats.summarize_paired(float(mean_a[bucket]), float(mean_b[bucket]), reps[:, bucket],
                                                bias_shift=False))
            if len(runs) > 1:
                row.update(stats.summarize_seeds(means_b[:, bucket] - means_a[:, bucket], per_seed[:, :, bucket],
                                                 row["delta"], seed, bias_shift=False))
        else:
            row.update(a=None, b=None, delta=None, ci_low=None, ci_high=None, p_value=None)
        out.append(row)
    return out


def _delta_replicates(a: BucketSums, b: BucketSums, quantity: str, indices: np.ndarray) -> np.ndarray:
    """B - A of the quantity's mean per bucket on every resample of `indices`: [n_boot, buckets]."""
    reps = np.empty((indices.shape[0], a.n_buckets + 1))
    for rows, weights in stats.weight_chunks(indices):
        reps[rows] = b.mean(quantity, weights) - a.mean(quantity, weights)
    return reps


def point_bucket_sums(scores: dict[str, np.ndarray], train_counts: np.ndarray, n_examples: int,
                      n_buckets: int) -> BucketSums:
    """A point's BucketSums from its token_scores.npz arrays (harness.results.read_token_scores)."""
    return bucket_sums(scores["example"], scores["token"], scores["nll"], scores["correct"], train_counts,
                       n_examples, n_buckets)


def compare_likelihood(runs: list[tuple[BucketSums, BucketSums]], names: list[str], *, n_boot: int,
                       seed: int) -> dict:
    """The LIKELIHOOD_ROWS named, arm B - arm A averaged over the (A, B) pairs of seeds, as
    PairedResult records (the text metrics' record), one shared resample of test examples; over
    several seeds their details hold each seed's delta and the hierarchical interval, as the text
    metrics' do, so a table and the verdict read both kinds of row by one rule."""
    from harness.metrics.suite import PairedResult

    out = {}
    for name in names:
        row = LIKELIHOOD_ROWS[name]
        index = bucket_index(row, runs[0][0].n_buckets)
        pairs = [(a.pooled(), b.pooled()) for a, b in runs] if index is None else runs
        result = paired_bucket_deltas(pairs, row.quantity, n_boot=n_boot, seed=seed)[index or 0]
        if result["delta"] is not None:
            seed_level = {key: result[key] for key in ("per_seed_deltas", "hierarchical_ci") if key in result}
            out[name] = PairedResult(name, row.higher_is_better, result["a"], result["b"], result["delta"],
                                     result["ci_low"], result["ci_high"], result["p_value"],
                                     runs[0][0].tokens.shape[0], details=seed_level)
    return out


def rows_legend(names: list[str], n_buckets: int = 10, *, not_measured: bool = False) -> str | None:
    """The table footnote that says what the further rows are (None when a table has none), and
    what "not measured" means when a row shows it."""
    parts = []
    if any(name in LIKELIHOOD_ROWS for name in names):
        share = f"{100 / n_buckets:g}%"
        parts.append("test-ce: teacher-forced CE of the test references; nll-most-frequent / nll-rarest / "
                     f"top1-rarest: mean NLL and top-1 accuracy on reference tokens in the most frequent / "
                     f"rarest {share} of training target mass (docs/reporting.md)")
    decodings = sorted({d for d in (split_decoding(n)[0] for n in names) if d is not None})
    if decodings:
        parts.append(", ".join(f"{d}/<metric>" for d in decodings) + ": the metric on that decoding of the test "
                     "prompts (the task's `decodings`; sampled = nucleus p 0.9, temperature 1, by default)")
    if not parts:
        return None
    return "; ".join(parts) + "." + (f" {NOT_MEASURED}: the point was written before result format 3 (or does "
                                     "not have that decoding)." if not_measured else "")
