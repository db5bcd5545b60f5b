import numpy as np
import pytest

from honed.evaluation.stats import Comparison, Interval, bootstrap_ci, describe, paired_difference


def test_ci_of_a_large_normal_sample_holds_the_true_mean_and_has_the_textbook_width():
    sigma, n = 2.0, 4000
    values = np.random.default_rng(7).normal(10.0, sigma, n).tolist()
    interval = bootstrap_ci(values)
    assert interval.low < 10.0 < interval.high
    assert interval.low < interval.estimate < interval.high
    expected_width = 2 * 1.96 * sigma / np.sqrt(n)
    assert interval.high - interval.low == pytest.approx(expected_width, rel=0.2)


def test_bootstrap_is_deterministic_for_a_seed_and_varies_with_it():
    values = np.random.default_rng(1).uniform(size=300).tolist()
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_a_higher_confidence_gives_a_wider_interval():
    values = np.random.default_rng(2).uniform(size=200).tolist()
    narrow, wide = bootstrap_ci(values, confidence=0.8), bootstrap_ci(values, confidence=0.99)
    assert wide.low < narrow.low and narrow.high < wide.high


def test_a_single_value_is_its_own_interval():
    assert bootstrap_ci([0.7]) == Interval(estimate=0.7, low=0.7, high=0.7)


def test_bootstrap_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], confidence=1.5)


def test_a_clear_improvement_is_significant():
    rng = np.random.default_rng(0)
    before = rng.binomial(1, 0.4, 200)
    after = np.maximum(before, rng.binomial(1, 0.5, 200))  # never worse, often better
    comparison = paired_difference(before.tolist(), after.tolist())
    assert comparison.significant
    assert comparison.difference.low > 0
    assert comparison.relative_gain == pytest.approx(after.mean() / before.mean() - 1)


def test_identical_scores_are_not_significant_and_gain_nothing():
    scores = np.random.default_rng(0).uniform(size=100).tolist()
    comparison = paired_difference(scores, scores)
    assert not comparison.significant
    assert comparison.difference.low <= 0 <= comparison.difference.high
    assert comparison.relative_gain == 0.0


def test_pairing_detects_a_small_consistent_gain_that_overlapping_intervals_hide():
    before = np.random.default_rng(5).uniform(size=100)
    after = before + 0.02
    comparison = paired_difference(before.tolist(), after.tolist())
    assert comparison.after.low < comparison.before.high  # the two intervals overlap...
    assert comparison.significant  # ...but every example improved


def test_relative_gain_is_none_when_the_before_mean_is_zero():
    assert paired_difference([0.0, 0.0], [1.0, 0.0]).relative_gain is None


def test_paired_difference_needs_lists_of_equal_length():
    with pytest.raises(ValueError, match="must pair up"):
        paired_difference([1.0, 0.0], [1.0])


def comparison(before, after, low, high, gain):
    return Comparison(before=Interval(before, before, before), after=Interval(after, after, after),
                      difference=Interval(after - before, low, high), relative_gain=gain,
                      significant=low > 0 or high < 0)


def test_describe_reads_as_one_line_with_the_gain_and_interval():
    line = describe(comparison(0.42, 0.61, 0.08, 0.30, 0.61 / 0.42 - 1))
    assert line == "0.42 -> 0.61 (+45%, 95% CI of the difference [+0.08, +0.30])"


def test_describe_says_when_the_difference_is_not_significant():
    line = describe(comparison(0.42, 0.44, -0.05, 0.09, 0.44 / 0.42 - 1))
    assert line == "0.42 -> 0.44 (+5%, 95% CI of the difference [-0.05, +0.09], not significant)"


def test_describe_leaves_out_the_gain_when_starting_from_zero():
    assert describe(comparison(0.0, 0.3, 0.1, 0.5, None)) == "0.00 -> 0.30 (95% CI of the difference [+0.10, +0.50])"


def test_describe_uses_the_confidence_the_comparison_was_made_with():
    result = paired_difference([0.1, 0.5, 0.2, 0.6], [0.3, 0.7, 0.4, 0.8], confidence=0.9)
    assert "90% CI of the difference [+0.20, +0.20]" in describe(result)
