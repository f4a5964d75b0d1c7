"""Length and degeneration metrics (length-ratio, empty-share, loop-share) on hand-made outputs."""

import numpy as np
import pytest

from harness.metrics import METRICS, compare, score
from harness.metrics.length import has_loop
from harness.metrics.text import words

LOOP_2 = "we go up and we go up and down"  # "we go up and" twice: not a loop
LOOP_3 = "we go up and we go up and we go up and"  # three times: a loop
PREDS = ["the cat sat", "", "   ", LOOP_2, LOOP_3, "Stop. Stop. Stop. Stop."]
REFS = ["the cat sat on the mat", "a b", "c", "d e f", "g", "h i j k"]


def _values(metrics, preds=PREDS, refs=REFS, **kw):
    return {name: r.value for name, r in score(preds, refs, metrics=metrics, n_boot=0, **kw).items()}


def test_loop_rule_counts_a_word_4gram_three_times():
    assert not has_loop(words(LOOP_2)) and has_loop(words(LOOP_3))
    assert has_loop(["a"] * 6)  # overlapping: "a a a a" starts at 0, 1 and 2
    assert not has_loop(["a"] * 5) and not has_loop([])


def test_length_empty_and_loop_golden_values():
    v = _values(["length-ratio", "empty-share", "loop-share", "mean-length"])
    # words: 3 + 0 + 0 + 9 + 12 + 8 ("stop" "." x4) = 32; references 6 + 2 + 1 + 3 + 1 + 4 = 17
    assert v["length-ratio"] == pytest.approx(32 / 17)
    assert v["length-ratio"] == pytest.approx(v["mean-length"] * len(PREDS) / sum(len(words(r)) for r in REFS))
    assert v["empty-share"] == pytest.approx(2 / 6)  # "" and whitespace only
    # LOOP_3 and "stop . stop . stop . stop ." ("stop . stop ." three times); LOOP_2 is not one
    assert v["loop-share"] == pytest.approx(2 / 6)
    assert [METRICS.get(m).higher_is_better for m in ("length-ratio", "empty-share", "loop-share")] == [None, False,
                                                                                                        False]


def test_length_ratio_counts_subwords_when_asked():
    from harness.metrics import MetricContext

    context = MetricContext(tokenize=lambda t: list(t.replace(" ", "")), diversity_tokens="subwords")
    v = _values(["length-ratio"], preds=["ab", "c"], refs=["abcd", "ef"], context=context)
    assert v["length-ratio"] == pytest.approx(3 / 6)


def test_bootstrap_through_score_and_compare():
    names = ["length-ratio", "empty-share", "loop-share"]
    results = score(PREDS, REFS, metrics=names, n_boot=300, seed=1)
    for r in results.values():
        assert r.ci_low <= r.value <= r.ci_high and r.ci_low < r.ci_high, r
    shorter = [" ".join(words(p)[:2]) for p in PREDS]  # at most 2 words: no loops, shorter
    paired = compare(PREDS, shorter, REFS, metrics=names, n_boot=300, seed=1)
    assert paired["loop-share"].delta == pytest.approx(-2 / 6)
    assert paired["length-ratio"].delta == pytest.approx(8 / 17 - 32 / 17)  # 2+0+0+2+2+2 words
    assert paired["empty-share"].delta == 0.0
    for r in paired.values():
        assert r.ci_low <= r.delta <= r.ci_high
