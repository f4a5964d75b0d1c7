"""Length-robust diversity: rarefied distinct-n, MTLD, MATTR and the compression ratio.

Distinct-n falls as a corpus grows (each new n-gram is less likely to be a new type), so an arm
with shorter outputs looks more diverse by distinct-n alone. These metrics hold the amount of
text fixed (rarefaction, MATTR's window), or measure repetition per stretch of text (MTLD), or are
the measure Shaib et al. 2024 recommend reporting (compression ratio).

Every one is a corpus metric whose bootstrap rows are computed on the resampled corpus: each
example repeated by its weight, in example order. Where a value is undefined (too little text) it
is NaN, never 0; harness/stats.py then ignores those replicates (no interval when more than 5% are
undefined). docs/metrics.md, "Length-robust diversity", states the definitions.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from importlib.metadata import version
from itertools import chain
from typing import Callable, Iterable

import numpy as np
from scipy import sparse
from scipy.special import gammaln

from harness.metrics.base import Batch, register
from harness.metrics.diversity import ngram_occurrences, token_ids

# Budget m = the references' n-gram count // 10: small enough that an arm whose outputs are a third
# of the references' length (chitchat's PDL) is still measured on nearly every bootstrap resample.
RAREFACTION_DIVISOR = 10
RAREFACTION_SHARE = 1 / RAREFACTION_DIVISOR
MTLD_THRESHOLD = 0.72  # McCarthy and Jarvis 2010's factor threshold (lexicalrichness's default)
MATTR_WINDOW = 50  # words per moving window
GZIP_LEVEL = 9


# ---------------------------------------------------------------- rarefied distinct-n

@dataclass(frozen=True)
class Rarefaction:
    counts: sparse.csr_array  # [examples, n-gram types]: each output's n-gram counts
    budget: int  # m, the number of n-grams drawn


def rarefaction_budget(batch: Batch, n: int) -> int:
    """m from the references, which every arm and seed of a task shares: each arm is measured at
    the same m, and adding an arm never changes another arm's number."""
    n_grams = sum(max(len(tokens) - n + 1, 0) for tokens in batch.reference_tokens)
    return n_grams // RAREFACTION_DIVISOR


def expected_types(counts: np.ndarray, m: int) -> np.ndarray:
    """Per row of pooled n-gram counts, the expected number of types among m n-grams drawn without
    replacement (Hurlbert 1971): sum over types i of 1 - C(N - N_i, m) / C(N, m), in log space.
    NaN where the row has fewer than m n-grams, or m < 1 (undefined, not 0)."""
    counts = np.rint(counts).astype(np.int64)  # bootstrap weights are whole multiplicities
    k = counts.shape[0]
    width = int(counts.max(initial=0)) + 1
    # The sum only depends on how many types have each count: freq[r, c] = types seen c times in row r.
    freq = np.bincount((counts + width * np.arange(k)[:, None]).ravel(), minlength=k * width).reshape(k, width)
    total = counts.sum(axis=1, keepdims=True)
    others = total - np.arange(width)  # n-grams not of a type seen c times
    can_miss = others >= m  # with fewer than m others left, every draw of m includes the type
    others_, total_ = np.where(can_miss, others, m), np.maximum(total, m)
    log_missed = gammaln(others_ + 1) - gammaln(others_ - m + 1) - gammaln(total_ + 1) + gammaln(total_ - m + 1)
    seen = 1.0 - np.where(can_miss, np.exp(log_missed), 0.0)
    expected = (freq[:, 1:] * seen[:, 1:]).sum(axis=1)
    return np.where((total[:, 0] >= m) & (m >= 1), expected, np.nan)


def _rarefaction(batch: Batch, n: int) -> Rarefaction:
    def build() -> Rarefaction:
        encoded = batch.shared("token-ids", lambda: token_ids(batch.prediction_tokens))
        example_of, gram = ngram_occurrences(*encoded, n)
        n_types = int(gram.max()) + 1 if gram.size else 0
        counts = sparse.csr_array((np.ones(gram.size), (example_of, gram)), shape=(len(batch), n_types))
        return Rarefaction(counts, rarefaction_budget(batch, n))

    return batch.shared(("rarefaction", n), build)


def _rarefied_distinct(stats: Rarefaction, weights: np.ndarray) -> np.ndarray:
    pooled = (stats.counts.T @ weights.T).T  # [rows, types]: weighted n-gram counts
    return expected_types(pooled, stats.budget) / max(stats.budget, 1)


def _register_rarefied(name: str, n: int) -> None:
    def details(batch: Batch) -> dict:
        return {"budget": rarefaction_budget(batch, n), "share": RAREFACTION_SHARE,
                "tokens": batch.context.diversity_tokens}

    register(name, "corpus", True,
             f"Expected distinct {n}-grams in m {n}-grams drawn without replacement from the pooled outputs, "
             f"/ m (Hurlbert 1971); m = {RAREFACTION_SHARE} x the references' {n}-grams (details.budget). "
             f"NaN when the outputs have fewer than m {n}-grams.",
             evaluate=_rarefied_distinct, details=details, bounds=(0.0, 1.0))(lambda batch: _rarefaction(batch, n))


RAREFIED_METRICS = {f"rarefied-distinct-{n}": n for n in (1, 2)}  # name -> n
for _name, _n in RAREFIED_METRICS.items():
    _register_rarefied(_name, _n)


# ---------------------------------------------------------------- resampled corpora

def _repeated(parts: list, row: np.ndarray) -> Iterable:
    """The parts of the resampled corpus: each example repeated by its weight, in example order."""
    return chain.from_iterable([parts[i]] * int(row[i]) for i in np.flatnonzero(row))


def _per_row(measure: Callable[[list], float]) -> Callable[[list, np.ndarray], np.ndarray]:
    """evaluate() of a metric computed on each row's resampled corpus (parts: one per example)."""
    def evaluate(parts: list, weights: np.ndarray) -> np.ndarray:
        return np.array([measure(list(_repeated(parts, row))) for row in weights], dtype=np.float64)

    return evaluate


# ---------------------------------------------------------------- MTLD and MATTR (lexicalrichness)

def _lexicalrichness_words(batch: Batch) -> list[list[str]]:
    """Each output's words by lexicalrichness's own rule (lowercase; digits and dashes deleted;
    ASCII punctuation turned into spaces; split on whitespace). The rule never removes whitespace,
    so the words of the space-joined corpus are the outputs' words in order: tokenizing once per
    output gives exactly lexicalrichness's tokens of any resampled corpus (tested)."""
    from lexicalrichness import preprocess, tokenize  # imports matplotlib: only when asked for

    # LexicalRichness(text) applies preprocess, then tokenize (which preprocesses again).
    return batch.shared("lexicalrichness-words", lambda: [tokenize(preprocess(p)) for p in batch.predictions])


def _lexical(corpus_words: list[list[str]]):
    """lexicalrichness's object for the corpus, from its words (no second tokenization)."""
    from lexicalrichness import LexicalRichness

    return LexicalRichness(list(chain.from_iterable(corpus_words)), preprocessor=None, tokenizer=None)


def _mtld(corpus_words: list[list[str]]) -> float:
    """lexicalrichness's MTLD; NaN without words (it would divide by zero)."""
    lex = _lexical(corpus_words)
    return lex.mtld(threshold=MTLD_THRESHOLD) if lex.words else math.nan


def _mattr(corpus_words: list[list[str]]) -> float:
    """lexicalrichness's MATTR; NaN with fewer words than the window (it would raise)."""
    lex = _lexical(corpus_words)
    return lex.mattr(window_size=MATTR_WINDOW) if lex.words >= MATTR_WINDOW else math.nan


def _lexical_details(**settings) -> Callable[[Batch], dict]:
    return lambda batch: {**settings, "tokens": "lexicalrichness", "lexicalrichness": version("lexicalrichness")}


register("mtld", "corpus", True,
         f"MTLD (McCarthy and Jarvis 2010) of the outputs joined in order, by lexicalrichness "
         f"(threshold {MTLD_THRESHOLD}, its own tokens); NaN without words.",
         evaluate=_per_row(_mtld), details=_lexical_details(threshold=MTLD_THRESHOLD),
         bounds=(0.0, np.inf), spread_resamples=True)(_lexicalrichness_words)
register("mattr", "corpus", True,
         f"MATTR (Covington and McFall 2010) of the outputs joined in order, by lexicalrichness "
         f"(window {MATTR_WINDOW} words, its own tokens); NaN with fewer words than the window.",
         evaluate=_per_row(_mattr), details=_lexical_details(window=MATTR_WINDOW),
         bounds=(0.0, 1.0), spread_resamples=True)(_lexicalrichness_words)


# ---------------------------------------------------------------- compression ratio

def _compression_ratio(parts: list[bytes]) -> float:
    """UTF-8 size / gzip size of the space-joined outputs (mtime=0: deterministic); NaN when no
    output has a non-space character."""
    data = b" ".join(parts)
    if not data.decode("utf-8").strip():
        return math.nan
    return len(data) / len(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))


register("compression-ratio", "corpus", False,
         f"Shaib et al. 2024: UTF-8 bytes of the outputs joined by spaces / their gzip size (level "
         f"{GZIP_LEVEL}); higher means more repetition. NaN for an empty corpus.",
         evaluate=_per_row(_compression_ratio),
         details=lambda batch: {"algorithm": "gzip", "compresslevel": GZIP_LEVEL, "join": " "},
         bounds=(0.0, np.inf), spread_resamples=True)(lambda batch: [p.encode("utf-8") for p in batch.predictions])
