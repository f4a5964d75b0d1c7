"""Length and degeneration: length-ratio, empty-share, loop-share, limit-share.

Diversity numbers move with length (longer outputs hold more distinct n-grams; a loop or an empty
output holds few), so a diversity gain means little unless these stay put beside it
(docs/metrics.md, "Length and degeneration"). Empty and loop use the documented word rule
(`text.words`) whatever `diversity_tokens` says; length-ratio counts tokens as mean-length does.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from harness.metrics import text
from harness.metrics.base import Batch, ratio_of_sums, register

LOOP_N = 4  # a loop is a word n-gram of this size...
LOOP_REPEATS = 3  # ...occurring this many times or more in one output


def has_loop(words: list[str], n: int = LOOP_N, repeats: int = LOOP_REPEATS) -> bool:
    """Whether an output is stuck in a loop: some word n-gram occurs `repeats` or more times in it.

    Twice can be a refrain or a quoted phrase; three times in one output is the repetition loop of
    greedy decoding, which usually runs until max_new_tokens (hence "unterminated").
    """
    counts = Counter(zip(*(words[i:] for i in range(n))))
    return max(counts.values(), default=0) >= repeats


def _words(batch: Batch) -> list[list[str]]:
    return batch.shared("words", lambda: [text.words(p) for p in batch.predictions])


def _token_details(batch: Batch) -> dict:
    return {"tokens": batch.context.diversity_tokens}


@register("length-ratio", "corpus", None,
          "Total output tokens / total reference tokens (the mean-length rule: words and punctuation "
          "by default); 1 is the references' length, below 1 shorter, above longer.",
          evaluate=ratio_of_sums, details=_token_details, bounds=(0.0, np.inf))
def _length_ratio(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([len(t) for t in batch.prediction_tokens], dtype=np.float64),
            np.array([len(t) for t in batch.reference_tokens], dtype=np.float64))


@register("empty-share", "example", False, "Share of outputs with no words (empty or whitespace only).",
          bounds=(0.0, 1.0))
def _empty_share(batch: Batch) -> np.ndarray:
    return np.array([not words for words in _words(batch)], dtype=np.float64)


@register("loop-share", "example", False,
          f"Share of outputs stuck in a loop: some word {LOOP_N}-gram occurs {LOOP_REPEATS} or more "
          "times in the output.",
          details=lambda batch: {"n": LOOP_N, "repeats": LOOP_REPEATS, "tokens": "words"}, bounds=(0.0, 1.0))
def _loop_share(batch: Batch) -> np.ndarray:
    return np.array([has_loop(words) for words in _words(batch)], dtype=np.float64)


@register("limit-share", "example", False,
          "Share of outputs cut off by max_new_tokens (no end token); needs each output's finished "
          "flag (generations.jsonl `stopped`), so it is not measured without them.",
          needs=("finished",), bounds=(0.0, 1.0))
def _limit_share(batch: Batch) -> np.ndarray:
    return (~batch.finished).astype(np.float64)
