"""ROUGE-1/2/L/Lsum F1 x 100 with Google's rouge-score, Porter stemming on, offline.

rougeLsum needs one sentence per line. NLTK's punkt data is usually absent (and never downloaded),
so sentences come from `text.split_sentences` with the splitter recorded in the metric details.
All four types are scored in one rouge-score call on the sentence-per-line text: the splitter only
replaces whitespace between sentences by newlines, and rouge-score's tokenizer treats both as
separators, so rouge1/2/L are exactly those of the raw text (the tests check this).
"""

from __future__ import annotations

import functools

import numpy as np

from harness.metrics.base import Batch, register
from harness.workers import process_pool, worth_spreading
from harness.metrics.text import sentence_splitter_name, split_sentences

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _stemming_tokenizer():
    """rouge-score's default tokenizer with use_stemmer=True, with stems memoised (same tokens, faster)."""
    from nltk.stem import porter
    from rouge_score import tokenize, tokenizers

    stem = functools.lru_cache(maxsize=None)(porter.PorterStemmer().stem)

    class MemoStemmer:
        def stem(self, word: str) -> str:
            return stem(word)

    class StemmingTokenizer(tokenizers.Tokenizer):
        def tokenize(self, text: str) -> list[str]:
            return tokenize.tokenize(text, MemoStemmer())

    return StemmingTokenizer()


def one_sentence_per_line(text: str, splitter: str) -> str:
    return "\n".join(split_sentences(text, splitter))


def _score_chunk(job: tuple[list[str], list[str], tuple[str, ...], str]) -> np.ndarray:
    from rouge_score import rouge_scorer

    predictions, references, types, splitter = job
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True, tokenizer=_stemming_tokenizer())
    out = np.empty((len(predictions), len(types)))
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        scores = scorer.score(one_sentence_per_line(ref, splitter), one_sentence_per_line(pred, splitter))
        out[i] = [scores[t].fmeasure * 100.0 for t in types]
    return out


def rouge_scores(predictions: list[str], references: list[str], *, types: tuple[str, ...] = ROUGE_TYPES,
                 splitter: str = "auto", workers: int = 1) -> dict[str, np.ndarray]:
    """Per-example ROUGE F1 x 100 for each type; `workers` > 1 splits the pairs over processes."""
    splitter = sentence_splitter_name(splitter)
    n = len(predictions)
    if not worth_spreading(n, workers):
        table = _score_chunk((predictions, references, types, splitter))
    else:
        bounds = np.linspace(0, n, 4 * workers + 1).astype(int)  # contiguous chunks keep order
        jobs = [(predictions[a:b], references[a:b], types, splitter) for a, b in zip(bounds[:-1], bounds[1:])]
        table = np.concatenate(list(process_pool(workers).map(_score_chunk, jobs)))
    return {t: table[:, j] for j, t in enumerate(types)}


def _batch_rouge(batch: Batch) -> dict[str, np.ndarray]:
    wanted = tuple(t for t in ROUGE_TYPES if t in batch.wanted) or ROUGE_TYPES
    return batch.shared("rouge", lambda: rouge_scores(
        batch.predictions, batch.references, types=wanted,
        splitter=batch.context.sentence_splitter, workers=batch.workers))


def _details(batch: Batch) -> dict:
    return {"stemmer": "porter", "scale": "F1 x 100",
            "sentence_splitter": sentence_splitter_name(batch.context.sentence_splitter)}


def _register(rouge_type: str, what: str) -> None:
    # only rougeLsum reads the sentence-per-line text: its stored values depend on the splitter
    setting = (lambda: sentence_splitter_name("auto")) if rouge_type == "rougeLsum" else None
    register(rouge_type, "example", True, f"{what} F1 x 100 (rouge-score, Porter stemming).",
             details=_details, machine_setting=setting)(lambda batch: _batch_rouge(batch)[rouge_type])


_register("rouge1", "ROUGE-1 (unigram overlap)")
_register("rouge2", "ROUGE-2 (bigram overlap)")
_register("rougeL", "ROUGE-L (longest common subsequence over the whole text)")
_register("rougeLsum", "ROUGE-Lsum (summary-level LCS, one sentence per line)")
