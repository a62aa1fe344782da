"""Percentiles read from 5 % buckets stay within 5 % of the exact ones (a differential test)."""

import random

from helpdesk.reports import histogram
from helpdesk.reports.queries import interpolated


def test_bucketed_percentiles_are_within_five_percent_of_exact() -> None:
    rng = random.Random(22)
    for size in (1, 2, 7, 100, 5000):
        values = [rng.expovariate(1 / 3600) for _ in range(size)]
        counts: dict[int, int] = {}
        for value in values:
            counts[histogram.bucket(value)] = counts.get(histogram.bucket(value), 0) + 1
        for percent in (50, 90):
            exact = interpolated(values, percent)
            estimate = histogram.percentile(sorted(counts.items()), percent)
            assert exact is not None and estimate is not None
            # Within the bucket's width around the true value: 5 % of (value + 1) at most.
            assert abs(estimate - exact) <= 0.05 * (exact + 1), (size, percent, exact, estimate)
    assert histogram.percentile([], 50) is None


def test_buckets_cover_every_duration_once() -> None:
    for seconds in (0, 0.5, 1, 59, 60, 3599, 86400 * 30):
        low, high = histogram.bounds(histogram.bucket(seconds))
        assert low <= seconds < high
