"""Metric values against hand-computed numbers and independent implementations."""

import math
from collections import Counter

import numpy as np
import pytest
from rouge_score import rouge_scorer

from harness.errors import HarnessError
from harness.metrics import METRICS, MetricContext, compare, rare_token_profile, score
from harness.metrics.rouge import one_sentence_per_line, rouge_scores
from harness.metrics.text import split_sentences, words

PREDS = ["The cat the cat", "", "a", "Ünï ünï !", "a b a b a b"]
REFS = ["the cat sat", "nothing", "a", "ünï", "a b"]


def _values(metrics, preds=PREDS, refs=REFS, **kw):
    return {name: r.value for name, r in score(preds, refs, metrics=metrics, n_boot=0, **kw).items()}


def test_word_tokenization_rule():
    assert words("Don't STOP, Ünï-code 42!") == ["don", "'", "t", "stop", ",", "ünï", "-", "code", "42", "!"]


def test_diversity_golden_values():
    # tokens: [the cat the cat] [] [a] [ünï ünï !] [a b a b a b]  -> 14 unigrams
    v = _values(["distinct-1", "distinct-2", "distinct-1-per-sample", "ngram-entropy-1", "seq-rep-4",
                 "mean-length", "vocab-size"])
    # types: the cat a ünï ! b = 6
    assert v["distinct-1"] == pytest.approx(6 / 14)
    # bigrams: (the,cat)x2 (cat,the) | (ünï,ünï) (ünï,!) | (a,b)x3 (b,a)x2 -> 10 total, 6 unique
    assert v["distinct-2"] == pytest.approx(6 / 10)
    # per sample: 2/4, empty -> 0, 1/1, 2/3, 2/6
    assert v["distinct-1-per-sample"] == pytest.approx((0.5 + 0 + 1 + 2 / 3 + 2 / 6) / 5)
    # counts the2 cat2 a4 ünï2 !1 b3 over 14
    counts = [2, 2, 4, 2, 1, 3]
    assert v["ngram-entropy-1"] == pytest.approx(-sum(c / 14 * math.log(c / 14) for c in counts))
    # only "a b a b a b" has 4-grams: (abab)(baba)(abab) -> 1 - 2/3; the others count 0
    assert v["seq-rep-4"] == pytest.approx((1 - 2 / 3) / 5)
    assert v["mean-length"] == pytest.approx(14 / 5)
    assert v["vocab-size"] == 6


def test_empty_and_one_word_outputs():
    v = _values(["distinct-1", "distinct-2", "ngram-entropy-2", "seq-rep-4", "rouge1", "rougeL"],
                preds=["", "word"], refs=["a reference", "word"])
    assert v["distinct-1"] == 1.0  # one token, one type
    assert v["distinct-2"] == 0.0 and v["ngram-entropy-2"] == 0.0  # no bigrams at all: 0/0 := 0
    assert v["seq-rep-4"] == 0.0
    assert v["rouge1"] == pytest.approx(50.0) and v["rougeL"] == pytest.approx(50.0)  # 0 and 100


def _independent(texts, n):
    pool = Counter(g for t in texts for g in zip(*[words(t)[i:] for i in range(n)]))
    total = sum(pool.values())
    distinct = len(pool) / total if total else 0.0
    entropy = -sum(c / total * math.log(c / total) for c in pool.values()) if total else 0.0
    return distinct, entropy


def _random_texts(seed, n=60):
    rng = np.random.default_rng(seed)
    vocab = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "Ünï", ".", "big", "red"]
    return [" ".join(rng.choice(vocab, size=rng.integers(0, 15))) for _ in range(n)]


def test_distinct_and_entropy_match_independent_implementation():
    texts = _random_texts(1)
    names = [f"distinct-{n}" for n in (1, 2, 3)] + [f"ngram-entropy-{n}" for n in (1, 2, 3, 4)]
    v = _values(names, preds=texts, refs=texts)
    for n in (1, 2, 3, 4):
        distinct, entropy = _independent(texts, n)
        assert v[f"ngram-entropy-{n}"] == pytest.approx(entropy, rel=1e-9)
        if n < 4:
            assert v[f"distinct-{n}"] == pytest.approx(distinct, rel=1e-12)


def test_corpus_bootstrap_fast_path_equals_recomputing_on_resampled_corpus():
    """The pooled-count shortcut must give exactly the metric of the explicitly resampled corpus."""
    from harness import stats
    from harness.metrics.base import Batch

    texts = _random_texts(2, n=40)
    batch = Batch(texts, texts)
    indices = stats.resample_indices(len(texts), 5, seed=3)
    _, weights = next(stats.weight_chunks(indices))
    for name in ("distinct-2", "ngram-entropy-3", "vocab-size"):
        metric = METRICS.get(name)
        fast = metric.values(metric.compute(batch), weights)
        for row, idx in enumerate(indices):
            resampled = [texts[i] for i in idx]
            expected = metric.corpus_value(resampled, resampled)
            assert fast[row] == pytest.approx(expected, rel=1e-9), name


def test_rouge_equals_rouge_score_directly():
    preds = ["The cats were running quickly. Then they slept!", "", "A dog.", "Ünïcode wörds here"]
    refs = ["The cat runs quickly. It sleeps.", "empty prediction", "A dog barked. Loudly.", "Ünïcode words"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    got = rouge_scores(preds, refs, splitter="regex")
    for i, (p, r) in enumerate(zip(preds, refs)):
        raw = scorer.score(r, p)
        for t in ("rouge1", "rouge2", "rougeL"):
            assert got[t][i] == pytest.approx(raw[t].fmeasure * 100)
        lsum = scorer.score(one_sentence_per_line(r, "regex"), one_sentence_per_line(p, "regex"))["rougeLsum"]
        assert got["rougeLsum"][i] == pytest.approx(lsum.fmeasure * 100)
    assert got["rouge1"][1] == 0.0  # empty prediction


def test_rouge_parallel_equals_serial():
    preds, refs = _random_texts(3, n=40), _random_texts(4, n=40)
    serial = rouge_scores(preds, refs, splitter="regex", workers=1)
    parallel = rouge_scores(preds, refs, splitter="regex", workers=2)
    for t in serial:
        np.testing.assert_array_equal(serial[t], parallel[t])


def test_sentence_splitter_keeps_abbreviations_and_initials():
    text = "Dr. Smith met J. K. Rowling in the U.S. on Monday. She said \"Hello!\" Then 3 people left.\nNew line"
    assert split_sentences(text, "regex") == [
        "Dr. Smith met J. K. Rowling in the U.S. on Monday.", "She said \"Hello!\"", "Then 3 people left.",
        "New line"]


def test_rouge_details_record_the_splitter():
    result = score(["A b. C d."], ["A b. C d."], metrics=["rougeLsum"], n_boot=0)["rougeLsum"]
    assert result.details["sentence_splitter"] in ("regex", "nltk-punkt")
    assert result.value == pytest.approx(100.0)


# ---------------------------------------------------------------- rare tokens

COUNTS = np.array([50, 30, 10, 5, 3, 2, 0])  # 4 mass buckets -> ids: [0, 2, 3, 3, 3, 3, unseen]


def _ids(text):
    return [int(x) for x in text.split()]


def test_rare_token_metrics_golden():
    preds, refs = ["0 0 2", "1 6"], ["0 2 2 3", "9 1"]  # id 9 is beyond the count vector: unseen
    ctx = MetricContext(train_counts=COUNTS, tokenize=_ids, n_buckets=4)
    v = _values(["rare-token-share", "rare-token-recall", "freq-bucket-tvd"], preds=preds, refs=refs, context=ctx)
    assert v["rare-token-share"] == pytest.approx(2 / 5)  # ids 2 and 6
    assert v["rare-token-recall"] == pytest.approx(1 / 4)  # ref rare: 2,2,3 | 9 ; hit: one 2
    # prediction shares [.4, 0, .2, .2, .2]; reference [1/6, 0, 1/6, 3/6, 1/6]
    assert v["freq-bucket-tvd"] == pytest.approx(0.3)
    profile = rare_token_profile(preds, refs, COUNTS, _ids, n_buckets=4)
    assert [b["bucket"] for b in profile["buckets"]] == [0, 1, 2, 3, "unseen"]
    assert [b["token_types"] for b in profile["buckets"]] == [1, 0, 1, 4, 1]
    assert profile["buckets"][3]["reference_share"] == pytest.approx(0.5)
    assert profile["rare_token_share"] == {"predictions": pytest.approx(0.4), "references": pytest.approx(4 / 6)}
    import json
    json.dumps(profile)  # JSON-able


def test_rare_metrics_join_defaults_only_with_context():
    assert "rare-token-share" not in score(["a"], ["a"], n_boot=0)
    ctx = MetricContext(train_counts=COUNTS, tokenize=_ids)
    assert "rare-token-share" in score(["0 1"], ["0 2"], n_boot=0, context=ctx)
    with pytest.raises(HarnessError, match="needs train_counts"):
        score(["a"], ["a"], metrics=["rare-token-recall"])


def test_bad_train_counts():
    with pytest.raises(HarnessError, match="non-negative"):
        rare_token_profile(["0"], ["0"], np.array([-1, 2]), _ids)
    with pytest.raises(HarnessError, match="1-D"):
        rare_token_profile(["0"], ["0"], np.zeros((2, 2)), _ids)


# ---------------------------------------------------------------- self-BLEU, input checks, compare

def test_self_bleu_matches_sacrebleu_and_is_bounded():
    from sacrebleu.metrics import BLEU

    outs = ["the cat sat on the mat", "the cat sat on the mat", "a dog ran far away today"]
    v = _values(["self-bleu"], preds=outs, refs=outs)
    bleu = BLEU(effective_order=True)
    expected = np.mean([bleu.sentence_score(o, outs[:i] + outs[i + 1:]).score for i, o in enumerate(outs)])
    assert v["self-bleu"] == pytest.approx(expected)
    with pytest.raises(HarnessError, match="too slow"):
        score(outs, outs, metrics=["self-bleu"], context=MetricContext(self_bleu_max_outputs=2))


@pytest.mark.parametrize("preds, refs, message", [
    (["a", "b"], ["a"], "2 predictions but 1 references"),
    (None, ["a"], "predictions is None"),
    (["a", None], ["a", "b"], r"predictions\[1\] is NoneType"),
    (["a", 3], ["a", "b"], r"predictions\[1\] is int"),
    ([], [], "predictions is empty"),
    ("a b", ["a"], "must be a list"),
])
def test_bad_input_raises_one_clear_error(preds, refs, message):
    with pytest.raises(HarnessError, match=message):
        score(preds, refs)


def test_unknown_metric_suggests_names():
    with pytest.raises(HarnessError, match="did you mean"):
        score(["a"], ["a"], metrics=["distinct2"])


def test_compare_identical_arms_and_a_clear_shift():
    preds, refs = _random_texts(5, n=80), _random_texts(6, n=80)
    same = compare(preds, preds, refs, metrics=["rouge1", "distinct-2"], n_boot=200)
    for r in same.values():
        assert r.delta == 0.0 and r.p_value == 1.0
    shorter = [" ".join(p.split()[:2]) for p in preds]
    shift = compare(preds, shorter, refs, metrics=["mean-length"], n_boot=200)["mean-length"]
    assert shift.delta < 0 and shift.ci_high < 0 and shift.p_value < 0.01


def test_score_is_deterministic_for_a_seed():
    preds, refs = _random_texts(7), _random_texts(8)
    a = score(preds, refs, metrics=["rouge1", "distinct-2"], n_boot=300, seed=4)
    b = score(preds, refs, metrics=["rouge1", "distinct-2"], n_boot=300, seed=4)
    c = score(preds, refs, metrics=["rouge1", "distinct-2"], n_boot=300, seed=5)
    assert a == b
    assert a["rouge1"].ci_low != c["rouge1"].ci_low
    for r in a.values():
        assert r.ci_low <= r.value <= r.ci_high


def test_offline_evaluate_module_matches_score():
    import evaluate

    from harness.metrics.rouge_module import ROUGE_MODULE_PATH

    preds, refs = ["The cat sat. On a mat.", ""], ["The cat sat on the mat.", "x"]
    got = evaluate.load(ROUGE_MODULE_PATH).compute(predictions=preds, references=refs)
    ours = score(preds, refs, metrics=["rouge1", "rouge2", "rougeL", "rougeLsum"], n_boot=0)
    assert got == {name: pytest.approx(r.value) for name, r in ours.items()}


def test_subword_tokens_option():
    ctx = MetricContext(tokenize=lambda s: [ord(ch) for ch in s], diversity_tokens="subwords")
    result = score(["abab", "a"], ["x", "y"], metrics=["distinct-1", "distinct-2"], n_boot=0, context=ctx)
    assert result["distinct-1"].value == pytest.approx(2 / 5)  # ids a,b over 5 characters
    assert result["distinct-2"].value == pytest.approx(2 / 3)  # ab, ba, ab
    assert result["distinct-1"].details == {"tokens": "subwords"}
    with pytest.raises(HarnessError, match="needs a tokenize"):
        score(["a"], ["a"], metrics=["distinct-1"], context=MetricContext(diversity_tokens="subwords"))
