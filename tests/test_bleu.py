"""Corpus BLEU / chrF: the registry's values (plain and resampled) against sacrebleu's own corpus scores."""

import numpy as np
import pytest
import sacrebleu

from harness.metrics import METRICS, compare, score
from harness.metrics.bleu import sacrebleu_stats

PREDS = [
    "Thou shalt not kill.",
    "And God said, let there be light: and there was light.",
    "",
    "Blessed are the poor in spirit, for theirs is the kingdom.",
    "He went up into a mountain to pray.",
    "I am the way , the truth , and the life .",
    "The Lord is my shepherd; I shall not want.",
    "a",
]
REFS = [
    "You shall not murder.",
    "God said, \"Let there be light,\" and there was light.",
    "In the beginning God created the heavens and the earth.",
    "Blessed are the poor in spirit, for theirs is the Kingdom of Heaven.",
    "He went up into the mountain by himself to pray.",
    "I am the way, the truth, and the life.",
    "Yahweh is my shepherd: I shall lack nothing.",
    "a",
]
SACREBLEU = {"bleu": sacrebleu.corpus_bleu, "chrf": sacrebleu.corpus_chrf}


def _value(name, preds, refs):
    return score(preds, refs, metrics=[name], n_boot=0)[name].value


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_equals_sacrebleu_corpus_score(name):
    expected = SACREBLEU[name](PREDS, [REFS]).score
    assert 0.0 < expected < 100.0  # a case where pooling matters, not a trivial 0 or 100
    assert _value(name, PREDS, REFS) == pytest.approx(expected, abs=1e-9)
    # Not the mean of sentence scores: the corpus formula pools statistics first.
    sentence_mean = np.mean([SACREBLEU[name]([p], [[r]]).score for p, r in zip(PREDS, REFS)])
    assert abs(_value(name, PREDS, REFS) - sentence_mean) > 1e-3


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_resample_equals_sacrebleu_on_materialised_repeats(name):
    stats = sacrebleu_stats(name, PREDS, REFS)
    metric = METRICS.get(name)
    indices = np.random.default_rng(3).integers(0, len(PREDS), size=(5, len(PREDS)))
    weights = np.stack([np.bincount(row, minlength=len(PREDS)) for row in indices]).astype(np.float64)
    assert weights.max() > 1  # repeats are materialised below
    got = metric.values(stats, weights)
    for row, value in zip(indices, got):
        expected = SACREBLEU[name]([PREDS[i] for i in row], [[REFS[i] for i in row]]).score
        assert value == pytest.approx(expected, abs=1e-9)
    assert len(set(np.round(got, 9))) > 1  # the resamples really differ


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_identical_text_scores_100(name):
    assert _value(name, REFS, REFS) == pytest.approx(100.0)


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_empty_predictions(name):
    assert _value(name, ["", ""], ["a reference here", "another one"]) == 0.0
    preds = ["", *PREDS[1:]]
    assert _value(name, preds, REFS) == pytest.approx(SACREBLEU[name](preds, [REFS]).score, abs=1e-9)


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_unicode(name):
    preds = ["Ünïcode café — naïve façade", "日本語 の テキスト です", "Ελληνικά κείμενα εδώ"]
    refs = ["Ünïcode café: a naïve façade", "日本語 の テキスト", "Ελληνικά κείμενα"]
    expected = SACREBLEU[name](preds, [refs]).score
    assert expected > 0.0
    assert _value(name, preds, refs) == pytest.approx(expected, abs=1e-9)


def test_bootstrap_deterministic_and_bounded():
    first = score(PREDS, REFS, metrics=["bleu", "chrf"], n_boot=200, seed=7)
    again = score(PREDS, REFS, metrics=["bleu", "chrf"], n_boot=200, seed=7)
    other = score(PREDS, REFS, metrics=["bleu", "chrf"], n_boot=200, seed=8)
    for name in ("bleu", "chrf"):
        assert first[name].to_dict() == again[name].to_dict()
        assert (first[name].ci_low, first[name].ci_high) != (other[name].ci_low, other[name].ci_high)
        assert 0.0 <= first[name].ci_low < first[name].ci_high <= 100.0
        assert first[name].level == "corpus" and first[name].higher_is_better is True
    assert "tok:13a" in first["bleu"].details["signature"]
    assert "nc:6" in first["chrf"].details["signature"]


def test_compare_identical_arms_p_is_one():
    paired = compare(PREDS, list(PREDS), REFS, metrics=["bleu", "chrf"], n_boot=200, seed=0)
    for name in ("bleu", "chrf"):
        assert paired[name].delta == 0.0 and paired[name].p_value == 1.0


def test_compare_detects_the_better_arm():
    worse = ["x y z"] * len(PREDS)
    paired = compare(worse, PREDS, REFS, metrics=["bleu", "chrf"], n_boot=200, seed=0)
    for name in ("bleu", "chrf"):
        assert paired[name].delta == pytest.approx(SACREBLEU[name](PREDS, [REFS]).score
                                                   - SACREBLEU[name](worse, [REFS]).score)
        assert paired[name].delta > 0
