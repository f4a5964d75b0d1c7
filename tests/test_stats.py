"""The statistics behind every published number: resampling, intervals, paired tests, seed summaries.

score(), compare() and the report tables all go through stats.replicates, stats.interval and
stats.summarize_paired; these tests drive those functions on synthetic data with a known truth.
"""

import math

import numpy as np
import pytest

from harness import stats
from harness.errors import HarnessError


def mean_of(x):
    """The weighted mean of per-example values as a weight-matrix statistic (what example metrics use)."""
    return lambda weights: weights @ x / weights.sum(axis=1)


def mean_interval(x, *, n_boot, seed):
    reps = stats.replicates({"mean": mean_of(x)}, stats.resample_indices(x.size, n_boot, seed))["mean"]
    return stats.interval(reps, float(x.mean()))


def paired_means(a, b, *, n_boot, seed=0):
    indices = stats.resample_indices(a.size, n_boot, seed)
    reps = stats.replicates({"a": mean_of(a), "b": mean_of(b)}, indices)
    return stats.summarize_paired(float(a.mean()), float(b.mean()), reps["b"] - reps["a"], bias_shift=False)


def test_weight_matrix_counts_each_resampled_index():
    indices = stats.resample_indices(7, 40, seed=0)
    rows = np.concatenate([w for _, w in stats.weight_chunks(indices, chunk_rows=16)])
    assert rows.shape == (40, 7)
    for r, idx in enumerate(indices):
        np.testing.assert_array_equal(rows[r], np.bincount(idx, minlength=7))


def test_replicates_evaluate_every_statistic_on_every_resample():
    x = np.random.default_rng(5).normal(size=30)
    indices = stats.resample_indices(30, 70, seed=2)  # 70 rows: spans three weight chunks
    reps = stats.replicates({"mean": mean_of(x), "max": lambda w: np.where(w > 0, x, -np.inf).max(axis=1)}, indices)
    np.testing.assert_allclose(reps["mean"], x[indices].mean(axis=1))
    np.testing.assert_array_equal(reps["max"], x[indices].max(axis=1))


def test_interval_contains_true_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths, covered = [], 0
    for trial in range(20):
        low, high = mean_interval(rng.normal(5.0, 2.0, 400), n_boot=500, seed=trial)
        covered += low <= 5.0 <= high
    assert covered >= 16  # nominal 95%: 19 of 20 expected; 16 leaves room for chance
    for n in (100, 1600):
        low, high = mean_interval(rng.normal(5.0, 2.0, n), n_boot=500, seed=1)
        widths.append(high - low)
        # ~ 2 * 1.96 * sigma / sqrt(n)
        assert widths[-1] == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(n), rel=0.25)
    assert widths[1] < widths[0] / 3


def test_interval_is_the_percentile_interval_of_the_replicates():
    reps = np.arange(1001, dtype=float)  # percentiles 2.5 and 97.5 are exactly 25 and 975
    assert stats.interval(reps, 500.0) == pytest.approx((25.0, 975.0))
    assert stats.interval(reps, 500.0, level=0.5) == pytest.approx((250.0, 750.0))


def test_bias_shift_moves_the_interval_by_estimate_minus_replicate_mean():
    """Corpus metrics (distinct-n, vocabulary) sit lower on resamples; the shift re-centres them."""
    reps = np.arange(1001, dtype=float)  # mean 500
    assert stats.interval(reps, 530.0) == pytest.approx((25.0, 975.0))  # example metrics: no shift
    assert stats.interval(reps, 530.0, bias_shift=True) == pytest.approx((55.0, 1005.0))


def test_interval_is_clipped_to_the_metric_bounds():
    reps = np.linspace(0.6, 0.98, 1001)
    low, high = stats.interval(reps, 1.0, bias_shift=True, bounds=(0.0, 1.0))  # shifted high would be ~1.2
    assert high == 1.0 and low == pytest.approx(0.6095 + (1.0 - 0.79))
    assert stats.interval(-reps, -1.0, bounds=(-0.9, 0.0))[0] == -0.9


def test_paired_identical_arms_give_p_one():
    x = np.random.default_rng(1).normal(size=200)
    result = paired_means(x, x, n_boot=300)
    assert result == {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}


def test_paired_clear_shift_gives_small_p():
    rng = np.random.default_rng(2)
    a = rng.normal(size=300)
    b = a + 0.5 + rng.normal(scale=0.1, size=300)
    result = paired_means(a, b, n_boot=999)
    assert result["delta"] == pytest.approx(np.mean(b - a))
    assert result["p_value"] == pytest.approx(1 / 1000)  # smallest reachable p
    assert 0.45 < result["ci_low"] < result["delta"] < result["ci_high"] < 0.55


def test_paired_no_real_difference_gives_large_p():
    rng = np.random.default_rng(3)
    a = rng.normal(size=300)
    b = a + rng.normal(scale=1.0, size=300)  # noise only: p should not be small
    assert paired_means(a, b, n_boot=999, seed=3)["p_value"] > 0.05


def test_paired_p_value_counts_centred_replicates_at_least_as_extreme():
    delta_reps = np.array([0.0, 1.0, 2.0, 3.0, 4.0])  # centred: -2, -1, 0, 1, 2
    assert stats.paired_p_value(1.0, delta_reps) == (1 + 4) / 6
    assert stats.paired_p_value(-2.0, delta_reps) == (1 + 2) / 6
    assert stats.paired_p_value(2.5, delta_reps) == 1 / 6


def test_summarize_paired_shifts_a_corpus_delta_but_never_clips_it():
    delta_reps = np.arange(1001, dtype=float) - 2000.0  # mean -1500, far below any bound
    result = stats.summarize_paired(1.0, 0.0, delta_reps, bias_shift=True)  # delta -1
    assert result["delta"] == -1.0
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((-1975.0 + 1499.0, -1025.0 + 1499.0))


def test_deterministic_for_a_seed():
    x = np.random.default_rng(4).normal(size=50)
    assert mean_interval(x, n_boot=200, seed=7) == mean_interval(x, n_boot=200, seed=7)
    assert mean_interval(x, n_boot=200, seed=7) != mean_interval(x, n_boot=200, seed=8)
    y = x + np.random.default_rng(5).normal(size=50)
    assert paired_means(x, y, n_boot=200, seed=7) == paired_means(x, y, n_boot=200, seed=7)


def test_no_resamples_gives_nan_interval_and_p():
    interval = stats.interval(np.empty(0), 1.5, bias_shift=True, bounds=(0.0, 1.0))
    assert np.isnan(interval).all()
    result = stats.summarize_paired(1.0, 2.0, np.empty(0), bias_shift=True)
    assert result["delta"] == 1.0 and np.isnan([result["ci_low"], result["ci_high"], result["p_value"]]).all()


def test_interval_ignores_undefined_replicates_up_to_five_percent():
    """A metric undefined on a resample (NaN: too little text) leaves that replicate out; beyond
    5% undefined there is no interval, since the rest no longer stand for every resample."""
    reps = np.arange(1001, dtype=float)
    with_nan = np.concatenate([reps, np.full(50, np.nan)])  # 50 of 1051: 4.8% undefined
    assert stats.interval(with_nan, 530.0, bias_shift=True) == stats.interval(reps, 530.0, bias_shift=True)
    assert stats.interval(np.concatenate([with_nan, [np.inf]]), 500.0) == stats.interval(reps, 500.0)
    too_many = np.concatenate([reps, np.full(60, np.nan)])  # 60 of 1061: 5.7%
    assert np.isnan(stats.interval(too_many, 500.0)).all()
    assert np.isnan(stats.interval(np.full(10, np.nan), 1.0)).all()
    assert np.isnan(stats.interval(reps, float("nan"), bias_shift=True)).all()  # undefined estimate


def test_paired_p_value_and_summary_ignore_undefined_replicates_likewise():
    delta_reps = np.array([0.0, 1.0, 2.0, 3.0, 4.0] * 20)  # centred: -2, -1, 0, 1, 2
    some_nan = np.concatenate([delta_reps, [np.nan] * 5])  # 5 of 105: 4.8%
    assert stats.paired_p_value(1.0, some_nan) == stats.paired_p_value(1.0, delta_reps) == (1 + 80) / 101
    too_many = np.concatenate([delta_reps, [np.nan] * 6])  # 6 of 106: 5.7%
    assert np.isnan(stats.paired_p_value(1.0, too_many))
    assert np.isnan(stats.paired_p_value(float("nan"), delta_reps))
    summary = stats.summarize_paired(1.0, 2.0, some_nan, bias_shift=True)
    assert summary == stats.summarize_paired(1.0, 2.0, delta_reps, bias_shift=True)
    summary = stats.summarize_paired(1.0, 2.0, too_many, bias_shift=True)
    assert summary["delta"] == 1.0 and np.isnan([summary["ci_low"], summary["ci_high"], summary["p_value"]]).all()


def test_across_seeds_is_mean_std_n():
    summary = stats.across_seeds([1.0, 2.0, 4.0])
    assert summary.mean == pytest.approx(7 / 3)
    assert summary.std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert summary.n == 3
    assert stats.across_seeds([3.0]).std is None


def test_bad_input():
    with pytest.raises(HarnessError):
        stats.across_seeds([])
    with pytest.raises(HarnessError):
        stats.across_seeds([1.0, float("nan")])
    with pytest.raises(HarnessError, match="empty"):
        stats.resample_indices(0, 10, seed=0)
    with pytest.raises(HarnessError, match="n_boot"):
        stats.resample_indices(5, -1, seed=0)


def test_the_hierarchical_interval_resamples_seeds_then_examples():
    """Seeds that agree: the example-level replicates. Seeds that disagree: wider than the
    example-level interval of their average, covering the seeds' spread."""
    from harness.stats import hierarchical_replicates

    rng = np.random.default_rng(0)
    one = rng.normal(0.0, 0.1, size=(1, 2000))
    assert np.array_equal(hierarchical_replicates(one, 0), one[0])
    assert np.allclose(hierarchical_replicates(np.stack([one[0]] * 3), 0), one[0])
    disagreeing = np.stack([one[0] - 1.0, one[0], one[0] + 1.0])  # per-seed deltas -1, 0, +1
    example_level = np.percentile(disagreeing.mean(axis=0), [2.5, 97.5])
    low, high = np.percentile(hierarchical_replicates(disagreeing, 0), [2.5, 97.5])
    assert high - low > 4 * (example_level[1] - example_level[0]) and low < -0.5 and high > 0.5
    assert np.array_equal(hierarchical_replicates(disagreeing, 0), hierarchical_replicates(disagreeing, 0))


def test_a_seed_averaged_delta_records_each_seeds_delta_and_the_hierarchical_interval():
    from harness.metrics.paired import seed_averaged_compare

    refs = [f"reference number {i} about the lord and the city" for i in range(30)]
    base = [f"the lord went to the city {i % 3}" for i in range(30)]
    runs = [(base, [f"output {i} {w} of seed" for i in range(30)], refs, None) for w in ("alpha", "beta beta", "gamma")]
    result = seed_averaged_compare(runs, ["distinct-2", "mean-length"], n_boot=200, seed=0)
    for name, r in result.items():
        per_seed = r.details["per_seed_deltas"]
        assert len(per_seed) == 3 and np.isclose(np.mean(per_seed), r.delta)
        low, high = r.details["hierarchical_ci"]
        assert low <= r.delta <= high
    length = result["mean-length"]
    assert length.details["per_seed_deltas"][1] > length.details["per_seed_deltas"][0]  # "beta beta" is longer
    assert length.details["hierarchical_ci"][1] - length.details["hierarchical_ci"][0] > length.ci_high - length.ci_low


def test_likelihood_rows_over_several_seeds_record_each_seeds_delta_and_the_hierarchical_interval():
    """The likelihood rows get the text metrics' seed-level record (stats.summarize_seeds): each
    seed's delta is that seed's own comparison, and seeds that disagree widen the interval that
    resamples them beyond the interval over test examples. One seed records neither."""
    from harness.metrics.likelihood import LIKELIHOOD_ROWS, bucket_sums, compare_likelihood

    rng = np.random.default_rng(0)
    n, per = 40, 6
    example, counts = np.repeat(np.arange(n), per), np.arange(30, 0, -1)
    token, nll = rng.integers(0, 30, size=n * per), rng.uniform(0.5, 3.0, size=n * per)

    def sums(shift: float):
        return bucket_sums(example, token, nll + shift, nll + shift < 1.0, counts, n, n_buckets=3)

    base = sums(0.0)
    runs = [(base, sums(shift)) for shift in (-0.3, 0.1, 0.5)]  # the seeds disagree on the sign
    names = list(LIKELIHOOD_ROWS)
    together = compare_likelihood(runs, names, n_boot=300, seed=0)
    for name in names:
        alone = [compare_likelihood([run], [name], n_boot=300, seed=0)[name] for run in runs]
        assert alone[0].details == {}  # one seed: nothing seed-level to record
        assert together[name].details["per_seed_deltas"] == pytest.approx([r.delta for r in alone])
    test_ce = together["test-ce"]
    low, high = test_ce.details["hierarchical_ci"]
    assert low < 0 < high and low <= test_ce.delta <= high
    assert high - low > 2 * (test_ce.ci_high - test_ce.ci_low)


def test_a_bound_that_is_rounding_noise_around_zero_is_zero_and_does_not_exclude_it():
    """Seed-averaged deltas whose seeds cancel come out as 1.7e-18, not 0: such a lower bound would
    print as '+1.73e-18' and read as a CI above 0. A small real bound is kept."""
    noise = np.array([1.7e-18] * 100 + [0.05] * 900)
    low, high = stats.interval(noise, 0.04)
    assert (low, high) == (0.0, 0.05) and math.copysign(1.0, low) == 1.0
    real = np.array([1e-6] * 100 + [0.05] * 900)
    assert stats.interval(real, 0.04)[0] == pytest.approx(1e-6)
    assert stats.interval(-noise, -0.04) == (-0.05, 0.0)
    # a delta of two seed means whose seeds cancel (0, -0.01, 0, +0.01, 0 over five seeds) is 0, not -1.4e-17
    a = float(np.mean([0.1, 0.1 + 0.01, 0.1, 0.1 - 0.01, 0.1]))
    b = float(np.mean([0.1] * 5))
    assert b - a != 0 and stats.summarize_paired(a, b, np.zeros(10), bias_shift=False)["delta"] == 0.0
