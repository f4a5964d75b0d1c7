"""Length-robust diversity metrics against brute force and the libraries they stand on.

Rarefied distinct-n is checked against the mean over every subsample, MTLD and MATTR against
lexicalrichness called directly, the compression ratio against gzip; bootstrap rows against the
same computation on the explicitly repeated corpus.
"""

import gzip
import math
from importlib.metadata import version
from itertools import combinations

import numpy as np
import pytest
from lexicalrichness import LexicalRichness

from harness.metrics import METRICS, MetricContext, compare, score
from harness.metrics.text import words

LENGTH_ROBUST = ["rarefied-distinct-1", "rarefied-distinct-2", "mtld", "mattr", "compression-ratio"]
PREDS = ["the cat the cat", "", "a b a", "cat a b"]  # 12 unigrams, 8 bigrams
WEIGHTS = np.array([[2.0, 1.0, 0.0, 3.0], [0.0, 0.0, 4.0, 0.0], [1.0, 1.0, 1.0, 1.0]])  # repeats and gaps


def _references(budget, n, size):
    """References whose n-gram count gives the rarefaction budget `budget` (share 1/10)."""
    return [" ".join(["x"] * (10 * budget + n - 1))] + [""] * (size - 1)


def _rarefied(preds, n, budget):
    result = score(preds, _references(budget, n, len(preds)), metrics=[f"rarefied-distinct-{n}"], n_boot=0)
    result = result[f"rarefied-distinct-{n}"]
    assert result.details == {"budget": budget, "share": 0.1, "tokens": "words"}
    return result.value


def _ngrams(texts, n):
    return [tuple(w[i:i + n]) for t in texts for w in [words(t)] for i in range(len(w) - n + 1)]


def _repeated(texts, row):
    """The corpus a bootstrap row stands for: each example repeated by its weight, in order."""
    return [t for t, w in zip(texts, row) for _ in range(int(w))]


@pytest.mark.parametrize("n", [1, 2])
def test_rarefied_distinct_is_the_mean_over_every_subsample(n):
    grams = _ngrams(PREDS, n)
    for budget in (1, 2, 5, len(grams) - 1):
        brute = np.mean([len({grams[j] for j in pick}) for pick in combinations(range(len(grams)), budget)])
        assert _rarefied(PREDS, n, budget) == pytest.approx(brute / budget, rel=1e-12)


@pytest.mark.parametrize("n", [1, 2])
def test_rarefied_distinct_at_the_whole_corpus_is_distinct_n_and_undefined_beyond(n):
    total = len(_ngrams(PREDS, n))
    distinct = score(PREDS, PREDS, metrics=[f"distinct-{n}"], n_boot=0)[f"distinct-{n}"].value
    assert _rarefied(PREDS, n, total) == distinct
    assert math.isnan(_rarefied(PREDS, n, total + 1))  # fewer n-grams than the budget: NaN, not 0


@pytest.mark.parametrize("n", [1, 2])
def test_rarefied_bootstrap_rows_equal_the_repeated_corpus(n):
    metric = METRICS.get(f"rarefied-distinct-{n}")
    from harness.metrics.base import Batch

    budget = 9  # rows hold 17, 12, 10 unigrams and 12, 8, 7 bigrams
    fast = metric.values(metric.compute(Batch(PREDS, _references(budget, n, len(PREDS)))), WEIGHTS)
    for row, value in zip(WEIGHTS, fast):
        repeated = _repeated(PREDS, row)
        if len(_ngrams(repeated, n)) < budget:
            assert math.isnan(value)
        else:
            assert value == pytest.approx(_rarefied(repeated, n, budget), rel=1e-12)
    assert np.isnan(fast).tolist() == ([False] * 3 if n == 1 else [False, True, True])


def test_rarefaction_budget_comes_from_the_references_by_the_diversity_tokens():
    refs = ["one two three four five", "six seven eight", "", "nine ten eleven twelve thirteen"]
    for preds in (PREDS, ["x"] * 4):  # the budget does not depend on the arm
        details = score(preds, refs, metrics=["rarefied-distinct-1", "rarefied-distinct-2"], n_boot=0)
        assert details["rarefied-distinct-1"].details["budget"] == 13 // 10
        assert details["rarefied-distinct-2"].details["budget"] == 10 // 10
    ctx = MetricContext(tokenize=lambda s: [ord(ch) for ch in s], diversity_tokens="subwords")
    result = score(PREDS, refs, metrics=["rarefied-distinct-1"], n_boot=0, context=ctx)["rarefied-distinct-1"]
    assert result.details == {"budget": sum(map(len, refs)) // 10, "share": 0.1, "tokens": "subwords"}


TEXTS = [
    "The well-known cat sat on the mat in 1999, and the cat sat again.",
    "A dog -- a big dog -- ran across the road; the dog ran and ran!",
    "Ünïcode wörds: café, naïve, and “quoted” words stay words...",
    "",
    "It is what it is, and what it is is what it was.",
    "Numbers 42 and 7 vanish; e-mail becomes email in lexicalrichness.",
    "the the the the the the the the a a a a b b",
]


def test_mtld_and_mattr_equal_lexicalrichness_on_the_joined_outputs():
    result = score(TEXTS, TEXTS, metrics=["mtld", "mattr"], n_boot=0)
    lex = LexicalRichness(" ".join(TEXTS))
    assert lex.words >= 50
    assert result["mtld"].value == lex.mtld(threshold=0.72)
    assert result["mattr"].value == lex.mattr(window_size=50)
    recorded = {"tokens": "lexicalrichness", "lexicalrichness": version("lexicalrichness")}
    assert result["mtld"].details == {"threshold": 0.72, **recorded}
    assert result["mattr"].details == {"window": 50, **recorded}


def _direct(name, text):
    """The metric of one text straight from lexicalrichness or gzip (NaN where undefined)."""
    if name == "compression-ratio":
        data = text.encode("utf-8")
        return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0)) if text.strip() else math.nan
    lex = LexicalRichness(text)
    if name == "mtld":
        return lex.mtld(threshold=0.72) if lex.words else math.nan
    return lex.mattr(window_size=50) if lex.words >= 50 else math.nan


@pytest.mark.parametrize("name", ["mtld", "mattr", "compression-ratio"])
def test_corpus_bootstrap_rows_equal_the_metric_of_the_repeated_corpus(name):
    from harness.metrics.base import Batch

    weights = np.array([[2.0, 0, 1, 3, 0, 1, 1], [0, 0, 0, 7, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1], [0, 3, 0, 0, 1, 0, 3]])
    metric = METRICS.get(name)
    fast = metric.values(metric.compute(Batch(TEXTS, TEXTS)), weights)
    for row, value in zip(weights, fast):
        assert value == pytest.approx(_direct(name, " ".join(_repeated(TEXTS, row))), rel=1e-12, nan_ok=True)
    assert math.isnan(fast[1]) and not np.isnan(fast[[0, 2, 3]]).any()  # row 1: the empty output 7 times


def test_compression_ratio_is_the_gzip_arithmetic_and_rises_with_repetition():
    data = " ".join(TEXTS).encode("utf-8")
    result = score(TEXTS, TEXTS, metrics=["compression-ratio"], n_boot=0)["compression-ratio"]
    assert result.value == len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))
    assert result.details == {"algorithm": "gzip", "compresslevel": 9, "join": " "}
    assert result.higher_is_better is False
    repetitive = ["the cat sat on the mat"] * 7
    varied = [" ".join(words(t)) for t in TEXTS if t] + ["a fresh line"]
    ratios = [score(t, t, metrics=["compression-ratio"], n_boot=0)["compression-ratio"].value
              for t in (repetitive, varied)]
    assert ratios[0] > 2 * ratios[1]


def test_degenerate_outputs_give_null_never_zero_or_a_crash():
    refs = ["a reference of some words here", "and another one"]
    empty = score(["", " "], refs, metrics=LENGTH_ROBUST, n_boot=30)
    for name, result in empty.items():
        row = result.to_dict()
        assert row["value"] is None and row["ci_low"] is None and row["ci_high"] is None, name
    one_word = score(["", "word"], refs, metrics=LENGTH_ROBUST, n_boot=30)
    for name in ("rarefied-distinct-1", "rarefied-distinct-2", "mattr"):  # below the budget / the window
        assert one_word[name].to_dict()["value"] is None, name
    assert one_word["mtld"].value == LexicalRichness("word").mtld(threshold=0.72) == 1.0  # its own rule
    assert one_word["compression-ratio"].value == 5 / len(gzip.compress(b" word", compresslevel=9, mtime=0))
    # Only digits and punctuation: lexicalrichness keeps no words.
    assert math.isnan(score(["42 !!", "7."], refs, metrics=["mtld"], n_boot=0)["mtld"].value)


def test_compare_runs_every_length_robust_metric_paired():
    preds = TEXTS * 4
    same = compare(preds, preds, preds, metrics=LENGTH_ROBUST, n_boot=100)
    for name, result in same.items():
        assert result.delta == 0.0 and result.p_value == 1.0, name
    # Each output said twice: twice the text, the same word proportions. distinct-1 halves; the
    # rarefied value at the fixed budget barely moves; repetition shows in MATTR and compression.
    doubled = [t + " " + t for t in preds]
    shift = compare(preds, doubled, preds, metrics=LENGTH_ROBUST + ["distinct-1"], n_boot=100)
    assert shift["distinct-1"].b == pytest.approx(shift["distinct-1"].a / 2)
    assert shift["rarefied-distinct-1"].details == {"budget": len(_ngrams(preds, 1)) // 10, "share": 0.1,
                                                    "tokens": "words"}
    assert 0.95 < shift["rarefied-distinct-1"].b / shift["rarefied-distinct-1"].a < 1.0
    assert shift["compression-ratio"].delta > 0 and shift["mattr"].delta < 0
    for result in shift.values():
        assert result.ci_low <= result.delta <= result.ci_high


def test_spreading_resamples_over_processes_changes_no_number(monkeypatch):
    """workers > 1 computes the resamples of MTLD, MATTR and the compression ratio in worker
    processes (and ROUGE's examples): every number equals the one-process run's, bit for bit."""
    from harness.metrics import suite

    spread = []
    serial_spread = suite._spread_replicates
    monkeypatch.setattr(suite, "_spread_replicates", lambda name, *args: spread.append(name) or serial_spread(name, *args))
    preds = TEXTS * 4
    doubled = [t + " " + t for t in preds]
    names = ["mtld", "mattr", "compression-ratio", "rouge1"]
    runs = {}
    for workers in (1, 2):
        suite.forget_estimates()  # else the second run reads the first's remembered estimates
        runs[workers] = compare(preds, doubled, preds, metrics=names, n_boot=101, workers=workers)
    assert sorted(spread) == sorted(2 * ["mtld", "mattr", "compression-ratio"])  # both arms, workers=2 only
    for name in names:
        one, two = runs[1][name], runs[2][name]
        assert np.isfinite([one.delta, one.ci_low, one.ci_high]).all(), name
        assert (one.a, one.b, one.delta, one.ci_low, one.ci_high, one.p_value) == \
            (two.a, two.b, two.delta, two.ci_low, two.ci_high, two.p_value), name


def test_a_spread_metric_the_worker_cannot_find_fails_with_what_to_do(monkeypatch):
    """Workers find a spread metric by name in a fresh interpreter: one registered only at run time
    in this process is not there, and the run stops with an error that says why and what to do
    (its hint pickled back from the worker), never with a wrong number."""
    from harness.errors import HarnessError
    from harness.metrics import suite
    from harness.metrics.base import make_metric

    metric = make_metric("runtime-only-ttr", "corpus", True, "types/tokens, registered at run time",
                         lambda batch: [words(p) for p in batch.predictions], spread_resamples=True,
                         evaluate=lambda toks, w: np.array([len(set(t for ex in toks for t in ex)) / 1.0] * len(w)))
    monkeypatch.setitem(METRICS._entries, "runtime-only-ttr", metric)
    suite.forget_estimates()
    with pytest.raises(HarnessError) as err:
        compare(TEXTS * 4, TEXTS * 4, TEXTS * 4, metrics=["runtime-only-ttr"], n_boot=11, workers=2)
    assert "not registered in a fresh process" in str(err.value)
    assert "--workers 1" in str(err.value)  # the hint came back from the worker
