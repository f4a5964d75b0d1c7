"""Bootstrap intervals, paired tests and across-seed summaries."""

import numpy as np
import pytest

from harness import stats
from harness.errors import HarnessError


def test_weight_matrix_counts_each_resampled_index():
    indices = stats.resample_indices(7, 40, seed=0)
    rows = np.concatenate([w for _, w in stats.weight_chunks(indices, chunk_rows=16)])
    assert rows.shape == (40, 7)
    for r, idx in enumerate(indices):
        np.testing.assert_array_equal(rows[r], np.bincount(idx, minlength=7))


def test_bootstrap_mean_contains_true_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths, covered = [], 0
    for trial in range(20):
        x = rng.normal(5.0, 2.0, 400)
        interval = stats.bootstrap_mean(x, n_boot=500, seed=trial)
        assert interval.value == pytest.approx(x.mean())
        covered += interval.ci_low <= 5.0 <= interval.ci_high
    assert covered >= 16  # nominal 95%: 19 of 20 expected; 16 leaves room for chance
    for n in (100, 1600):
        interval = stats.bootstrap_mean(rng.normal(5.0, 2.0, n), n_boot=500, seed=1)
        widths.append(interval.ci_high - interval.ci_low)
        # ~ 2 * 1.96 * sigma / sqrt(n)
        assert widths[-1] == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(n), rel=0.25)
    assert widths[1] < widths[0] / 3


def test_paired_identical_arms_give_p_one():
    x = np.random.default_rng(1).normal(size=200)
    result = stats.paired_bootstrap_mean(x, x, n_boot=300)
    assert result.delta == 0.0 and result.p_value == 1.0 and result.ci_low == result.ci_high == 0.0


def test_paired_clear_shift_gives_small_p():
    rng = np.random.default_rng(2)
    a = rng.normal(size=300)
    b = a + 0.5 + rng.normal(scale=0.1, size=300)
    result = stats.paired_bootstrap_mean(a, b, n_boot=999)
    assert result.delta == pytest.approx(np.mean(b - a))
    assert result.p_value == pytest.approx(1 / 1000)  # smallest reachable p
    assert 0.45 < result.ci_low < result.delta < result.ci_high < 0.55


def test_paired_no_real_difference_gives_large_p():
    rng = np.random.default_rng(3)
    a = rng.normal(size=300)
    b = a + rng.normal(scale=1.0, size=300)  # noise only: p should not be small
    assert stats.paired_bootstrap_mean(a, b, n_boot=999, seed=3).p_value > 0.05


def test_deterministic_for_a_seed():
    x = np.random.default_rng(4).normal(size=50)
    assert stats.bootstrap_mean(x, seed=7) == stats.bootstrap_mean(x, seed=7)
    assert stats.bootstrap_mean(x, seed=7) != stats.bootstrap_mean(x, seed=8)


def test_across_seeds_is_mean_std_n():
    summary = stats.across_seeds([1.0, 2.0, 4.0])
    assert summary.mean == pytest.approx(7 / 3)
    assert summary.std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert summary.n == 3
    assert stats.across_seeds([3.0]).std is None


def test_no_resamples_gives_nan_interval():
    interval = stats.bootstrap_mean([1.0, 2.0], n_boot=0)
    assert interval.value == 1.5 and np.isnan(interval.ci_low) and np.isnan(interval.ci_high)


def test_bad_values():
    with pytest.raises(HarnessError):
        stats.bootstrap_mean([])
    with pytest.raises(HarnessError):
        stats.bootstrap_mean([1.0, float("nan")])
    with pytest.raises(HarnessError, match="differ in length"):
        stats.paired_bootstrap_mean([1.0, 2.0], [1.0])
