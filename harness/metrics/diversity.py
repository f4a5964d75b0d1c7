"""Diversity of the outputs alone: distinct-n, n-gram entropy, seq-rep-n, length, vocabulary.

References are not used. Tokens are `Batch.prediction_tokens` (words by the documented regex rule,
or model subword ids). Conventions for degenerate outputs: a ratio with no n-grams (0/0) is 0, an
empty corpus has entropy 0, an output shorter than n has seq-rep-n 0 (nothing can repeat).
"""

from __future__ import annotations

import functools

import numpy as np

from harness.metrics.base import Batch, register


class NgramTable:
    """Per-example n-gram counts, split for fast pooling under example weights.

    `pooled(W)` gives, per weight row, the number of n-gram types present, the n-gram total and the
    entropy of the pooled distribution; distinct-n, Ent-n and vocabulary size all derive from it.
    Most n-grams occur in a single example: their pooled count is just weight x count, so they are
    summarised per example and pooled by matrix products. N-grams shared by several examples are
    pooled per weight row with one gather and one bincount. The last result is reused because
    several metrics ask for the same weight chunk in turn.
    """

    def __init__(self, example_of: np.ndarray, gram: np.ndarray, n_examples: int):
        """`example_of[j]`, `gram[j]`: example and n-gram id of every n-gram occurrence j."""
        # One entry per (example, n-gram type) with its count.
        base = int(gram.max()) + 1 if gram.size else 1
        pairs, count = np.unique(example_of * base + gram, return_counts=True)
        example = pairs // base
        _, type_ = np.unique(pairs % base, return_inverse=True)
        count = count.astype(np.float64)
        n_types = int(type_.max()) + 1 if type_.size else 0
        self.n_examples = n_examples
        self.per_example_total = np.bincount(example, weights=count, minlength=n_examples)
        self.per_example_types = np.bincount(example, minlength=n_examples).astype(np.float64)
        # n-grams found in exactly one example: per-example type count, token count, sum of c*log(c).
        single = np.bincount(type_, minlength=n_types)[type_] == 1
        self.single_types = np.bincount(example[single], minlength=n_examples).astype(np.float64)
        self.single_total = np.bincount(example[single], weights=count[single], minlength=n_examples)
        self.single_c_log_c = np.bincount(example[single], weights=count[single] * np.log(count[single]),
                                          minlength=n_examples)
        # n-grams shared by several examples, renumbered 0..n_shared-1.
        shared_types, self.shared_type = np.unique(type_[~single], return_inverse=True)
        self.n_shared = shared_types.size
        self.shared_example = example[~single]
        self.shared_count = count[~single]
        self._last: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    def pooled(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """For each weight row: number of types present, total n-grams, entropy (nats) of the pool."""
        if self._last is not None and self._last[0] is weights:
            return self._last[1]
        totals = weights @ self.per_example_total
        types = (weights > 0).astype(np.float64) @ self.single_types
        # A single-example n-gram with count c weighted w contributes (w c) log(w c) = c w log w + w c log c.
        w_log_w = weights * np.log(np.where(weights > 0, weights, 1.0))
        sum_c_log_c = w_log_w @ self.single_total + weights @ self.single_c_log_c
        for r, row in enumerate(weights):
            if self.n_shared:
                pooled = np.bincount(self.shared_type, weights=row.take(self.shared_example) * self.shared_count,
                                     minlength=self.n_shared)
                types[r] += np.count_nonzero(pooled)
                sum_c_log_c[r] += _sum_c_log_c(pooled)
        # H = -sum p log p with p = c / T  <=>  H = log T - sum(c log c) / T
        safe_totals = np.where(totals > 0, totals, 1.0)
        entropy = np.where(totals > 0, np.log(safe_totals) - sum_c_log_c / safe_totals, 0.0)
        result = {"types": types, "total": totals, "entropy": entropy}
        self._last = (weights, result)
        return result


def _sum_c_log_c(pooled: np.ndarray) -> float:
    """Sum of c*log(c) (0 log 0 = 0); bootstrap counts are integers, so a lookup table (its size
    rounded up to a power of two, so a few cached tables serve every row) is used."""
    as_int = pooled.astype(np.int64)
    if np.array_equal(as_int, pooled):
        return float(_c_log_c_table(1 << max(int(as_int.max()), 1).bit_length())[as_int].sum())
    return float((pooled * np.log(np.where(pooled > 0, pooled, 1.0))).sum())


@functools.lru_cache(maxsize=8)
def _c_log_c_table(max_count: int) -> np.ndarray:
    c = np.arange(max_count + 1, dtype=np.float64)
    return c * np.log(np.where(c > 0, c, 1.0))


def token_ids(token_lists: list[list]) -> tuple[np.ndarray, np.ndarray, int]:
    """All tokens as one int array (ids in order of first appearance), lengths per example, vocab size."""
    vocab: dict = {}
    ids = np.fromiter((vocab.setdefault(tok, len(vocab)) for tokens in token_lists for tok in tokens),
                      dtype=np.int64)
    lengths = np.fromiter((len(tokens) for tokens in token_lists), dtype=np.int64, count=len(token_lists))
    return ids, lengths, len(vocab)


def ngram_occurrences(ids: np.ndarray, lengths: np.ndarray, vocab_size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(example, n-gram id) of every n-gram occurrence, vectorised: an n-gram's id is the id of the
    pair (its first n-1 tokens' id, its last token), so ids for n are built from ids for n-1."""
    example_of = np.repeat(np.arange(lengths.size), lengths)
    ends = np.repeat(np.cumsum(lengths), lengths)  # end (exclusive) of each position's example
    gram = ids
    for k in range(2, n + 1):
        # The k-gram starting at j exists when j + k - 1 is inside the same example.
        valid = np.arange(ids.size - k + 1) + k - 1 < ends[:ids.size - k + 1]
        packed = gram[:ids.size - k + 1] * vocab_size + ids[k - 1:]
        packed = np.where(valid, packed, -1)
        uniq, inverse = np.unique(packed, return_inverse=True)
        gram = inverse - (1 if uniq.size and uniq[0] == -1 else 0)  # invalid positions become -1
    keep = np.arange(gram.size) + n - 1 < ends[:gram.size] if n > 1 else np.ones(gram.size, dtype=bool)
    return example_of[:gram.size][keep], gram[keep]


def ngram_table(batch: Batch, n: int) -> NgramTable:
    def build() -> NgramTable:
        encoded = batch.shared("token-ids", lambda: token_ids(batch.prediction_tokens))
        example_of, gram = ngram_occurrences(*encoded, n)
        return NgramTable(example_of, gram, len(batch))

    return batch.shared(("ngrams", n), build)


def _token_details(batch: Batch) -> dict:
    return {"tokens": batch.context.diversity_tokens}


def _distinct_corpus(stats: NgramTable, weights: np.ndarray) -> np.ndarray:
    pooled = stats.pooled(weights)
    return np.divide(pooled["types"], pooled["total"], out=np.zeros(weights.shape[0]), where=pooled["total"] > 0)


def _entropy(stats: NgramTable, weights: np.ndarray) -> np.ndarray:
    return stats.pooled(weights)["entropy"]


def _types(stats: NgramTable, weights: np.ndarray) -> np.ndarray:
    return stats.pooled(weights)["types"]


def _register_ngram_metrics(n: int) -> None:
    register(f"distinct-{n}", "corpus", True,
             f"Corpus distinct-{n} (Li et al. 2016): unique {n}-grams / all {n}-grams over all outputs.",
             evaluate=_distinct_corpus, details=_token_details,
             bounds=(0.0, 1.0))(lambda batch: ngram_table(batch, n))

    def per_sample(batch: Batch) -> np.ndarray:
        table = ngram_table(batch, n)
        return np.divide(table.per_example_types, table.per_example_total,
                         out=np.zeros(len(batch)), where=table.per_example_total > 0)

    register(f"distinct-{n}-per-sample", "example", True,
             f"Per-output unique {n}-grams / {n}-grams, averaged over outputs (higher than corpus "
             f"distinct-{n}; 0 for outputs without {n}-grams).", details=_token_details)(per_sample)


def _register_entropy(n: int) -> None:
    register(f"ngram-entropy-{n}", "corpus", True,
             f"Ent-{n} (Zhang et al. 2018): entropy in nats of the pooled {n}-gram distribution of all "
             f"outputs (not the model's predictive entropy).",
             evaluate=_entropy, details=_token_details,
             bounds=(0.0, np.inf))(lambda batch: ngram_table(batch, n))


for _n in (1, 2, 3):
    _register_ngram_metrics(_n)
for _n in (1, 2, 3, 4):
    _register_entropy(_n)


def seq_rep(table: NgramTable) -> np.ndarray:
    """Per output 1 - unique n-grams / n-grams (Welleck et al. 2020); 0 when there are no n-grams."""
    unique_share = np.divide(table.per_example_types, table.per_example_total,
                             out=np.ones(table.n_examples), where=table.per_example_total > 0)
    return 1.0 - unique_share


@register("seq-rep-4", "example", False,
          "seq-rep-4 (Welleck et al. 2020): per output 1 - unique 4-grams / 4-grams, averaged; "
          "0 for outputs shorter than 4 tokens.", details=_token_details)
def _seq_rep_4(batch: Batch) -> np.ndarray:
    return seq_rep(ngram_table(batch, 4))


@register("mean-length", "example", None,
          "Mean output length in diversity tokens (words and punctuation marks by default).",
          details=_token_details)
def _mean_length(batch: Batch) -> np.ndarray:
    return np.array([len(tokens) for tokens in batch.prediction_tokens], dtype=np.float64)


@register("vocab-size", "corpus", True,
          "Vocabulary used: distinct token types over all outputs (grows with the number and length "
          "of outputs; compare arms on the same examples).",
          evaluate=_types, details=_token_details, bounds=(0.0, np.inf))
def _vocab_size(batch: Batch):
    return ngram_table(batch, 1)
