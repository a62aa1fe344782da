"""Durations counted in buckets 5 % wide, and percentiles read back from the counts.

Bucket b holds durations d with 1.05**b <= d + 1 < 1.05**(b + 1): a long range's median comes
from summing a few hundred bucket counts instead of sorting every sample, within 5 % of the
exact figure (each ranked sample is placed evenly inside its bucket).
"""

import math
from collections.abc import Iterable

BASE = 1.05
_LOG_BASE = math.log(BASE)


def bucket(seconds: float) -> int:
    """The bucket a duration falls in."""
    return int(math.log1p(max(0.0, seconds)) / _LOG_BASE)


def bounds(index: int) -> tuple[float, float]:
    """The durations bucket ``index`` covers, [low, high)."""
    return BASE ** index - 1, BASE ** (index + 1) - 1


def percentile(counts: Iterable[tuple[int, int]], percent: int) -> float | None:
    """The ``percent`` percentile of (bucket, count) pairs in bucket order; None when empty.

    Ranked like ``percentile_cont``: between the two samples around the position, each placed
    evenly inside its bucket.
    """
    return percentiles(counts, (percent,)).get(percent)


def percentiles(counts: Iterable[tuple[int, int]], percents: Iterable[int]) -> dict[int, float]:
    """Several percentiles of the same counts (filtered and totalled once); empty when no samples."""
    pairs = [(b, n) for b, n in counts if n > 0]
    total = sum(n for _, n in pairs)
    found = {}
    for percent in percents if total else ():
        position = (total - 1) * percent / 100
        low = int(position)
        below = _value_at(pairs, low)
        above = _value_at(pairs, min(low + 1, total - 1))
        found[percent] = below + (position - low) * (above - below)
    return found


def _value_at(pairs: list[tuple[int, int]], rank: int) -> float:
    """An estimate of the sample at 0-based ``rank``: spread evenly inside its bucket."""
    seen = 0
    for index, n in pairs:
        if rank < seen + n:
            low, high = bounds(index)
            return low + (high - low) * (rank - seen + 0.5) / n
        seen += n
    return bounds(pairs[-1][0])[1]


def exact_percentile(ordered: list[float], percent: int) -> float:
    """The ``percent`` percentile of sorted samples, like ``percentile_cont`` (not empty)."""
    position = (len(ordered) - 1) * percent / 100
    low = int(position)
    above = ordered[min(low + 1, len(ordered) - 1)]
    return ordered[low] + (position - low) * (above - ordered[low])
