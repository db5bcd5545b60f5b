"""When a guard metric counts as a regression: direction and scale per metric."""

import pytest

from honed.jobs.job_evaluation import regression


@pytest.mark.parametrize("metric, before, after, threshold, expected", [
    ("exact_match", 0.80, 0.70, 0.05, True),     # a 10-point drop on a score in [0, 1]
    ("exact_match", 0.80, 0.76, 0.05, False),    # within the threshold
    ("exact_match", 0.50, 0.90, 0.05, False),    # got better
    ("rouge_l", 0.40, 0.40, 0.0, False),         # unchanged is never a regression
    ("perplexity", 10.0, 12.0, 0.05, True),      # lower is better, and the threshold is relative: +20%
    ("perplexity", 10.0, 10.4, 0.05, False),     # +4%
    ("perplexity", 10.0, 6.0, 0.05, False),      # fell: better
])
def test_a_guard_metric_regresses_only_when_it_gets_worse_beyond_the_threshold(metric, before, after, threshold,
                                                                               expected):
    assert regression(metric, before, after, threshold) is expected
