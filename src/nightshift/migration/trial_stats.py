"""The statistics of a model trial, pure: the Wilson interval, stratified allocation, confusion tables."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054

#: What the confusion table shows for a key the candidate gave no answer for.
FAILED = "(failed)"


@dataclass(frozen=True)
class Interval:
    """A share ``k / n`` with its Wilson score interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def share(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.share:.1%} ({100 * self.low:.1f}–{self.high:.1%}, n={self.n:,})"


def wilson(k: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of ``k`` successes in ``n`` trials (Wilson 1927): unlike the normal
    approximation it stays inside [0, 1] and keeps its coverage near 0 and 1, where agreements live."""
    if not 0 <= k <= n:
        raise ValueError(f"successes must be between 0 and n={n}, not {k}")
    if n == 0:
        return Interval(0, 0, 0.0, 1.0)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at k = 0 (k = n) the bound is 0 (1) exactly; the float arithmetic would miss it by an ulp
    return Interval(k, n, 0.0 if k == 0 else centre - spread, 1.0 if k == n else centre + spread)


def allocate(strata: Mapping[str | None, int], size: int) -> dict[str | None, int]:
    """Proportional allocation of ``size`` over ``strata`` (stratum → eligible rows), at least one per
    stratum present, never more than a stratum holds; all of every stratum when ``size`` covers them.

    Largest remainders settle the rounding (ties: the larger stratum, then its name), so the takes sum
    to ``size`` exactly whenever there are enough rows.
    """
    if size < 1:
        raise ValueError(f"the sample size must be at least 1, not {size}")
    present = {stratum: rows for stratum, rows in strata.items() if rows > 0}
    total = sum(present.values())
    if total <= size:
        return dict(present)
    if len(present) > size:
        raise ValueError(f"a sample of {size} cannot hold one key of each of the {len(present)} strata: "
                         f"ask for at least {len(present)}")
    take = dict.fromkeys(present, 1)
    # Share the rest in proportion to what each stratum has beyond its guaranteed one.
    rest, spare = size - len(present), {s: rows - 1 for s, rows in present.items()}
    spare_total = sum(spare.values())
    quotas = {s: rest * spare[s] / spare_total for s in present}
    for s, quota in quotas.items():
        take[s] += math.floor(quota)
    order = sorted(present, key=lambda s: (-(quotas[s] - math.floor(quotas[s])), -present[s], str(s)))
    left = size - sum(take.values())
    for s in order:
        if left == 0:
            break
        if take[s] < present[s]:
            take[s] += 1
            left -= 1
    return take


def confusion(pairs: Iterable[tuple[str | None, str | None]]) -> dict[str, dict[str, int]]:
    """Current label → candidate label → keys; a candidate failure is :data:`FAILED`."""
    counts = Counter((str(current), FAILED if candidate is None else str(candidate))
                     for current, candidate in pairs)
    table: dict[str, dict[str, int]] = {}
    for (current, candidate), n in sorted(counts.items()):
        table.setdefault(current, {})[candidate] = n
    return table
