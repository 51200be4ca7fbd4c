"""What a feature costs a month today, and after moving it to batches, alone and with caching,
and with the routing lever (``routing.py``) on top.

Every dollar comes from :meth:`nightshift.costs.PriceTable.cost`; this module only decides
which tokens go in which class:

* **today**: the rows' own tokens at the standard rate; ``cache_creation_input_tokens`` count
  as 5-minute cache writes (the API's default TTL; the file does not say which TTL was used).
* **batch alone**: the same tokens at the batch rate.
* **batch + cache**: requests sharing a prefix (the same ``prefix_hash`` and model, on at
  least two requests of the feature, with ``prefix_tokens``) are regrouped per UTC day: the
  prefix is written once at the 1-hour rate and read by the day's other requests; the rest of
  each prompt is plain input. A group-day where that would cost more than batch alone (a
  single request, or two) stays at batch alone. A prefix shorter than the model's
  ``min_cacheable_tokens`` cannot be cached, and the notes say so.
* **routed**: the rows the routing lever moves, on the cheaper model at the standard rate (the
  feature's path unchanged); **all levers**: routed, then batch + cache for a batch candidate.

A model's long-prompt band is decided per request: an aggregated row (``requests`` > 1) pays the
band only when its average request's prompt is over the band's threshold.

Monthly figures scale the file's span (whole UTC days, first to last) to ``days_in_month``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from nightshift.costs import PriceTable, UnknownModel, Usage
from nightshift.inventory.records import TrafficRecord

DEFAULT_DAYS_IN_MONTH = 30
# A prefix shared by fewer requests than this is not a shared prefix.
MIN_REQUESTS_SHARING_A_PREFIX = 2


@dataclass(frozen=True)
class Span:
    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def month_factor(self, days_in_month: float | Decimal = DEFAULT_DAYS_IN_MONTH) -> Decimal:
        return Decimal(str(days_in_month)) / Decimal(self.days)


def span_of(records: Iterable[TrafficRecord]) -> Span:
    days = [r.day for r in records]
    if not days:
        raise ValueError("no valid rows: the file's span is unknown")
    return Span(min(days), max(days))


@dataclass
class Projection:
    """One feature's spend; the ``*_in_file`` figures are for the file's span, the rest per month."""

    priced: bool
    unpriced_reason: str | None = None
    unknown_models: dict[str, int] = field(default_factory=dict)  # model -> requests
    today_in_file: Decimal | None = None
    batch_alone_in_file: Decimal | None = None
    batch_cache_in_file: Decimal | None = None
    month_factor: Decimal = Decimal(1)
    caching_notes: list[str] = field(default_factory=list)
    cached_requests: int = 0
    routed_today_in_file: Decimal | None = None  # None: the routing lever does not apply
    all_levers_in_file: Decimal | None = None  # routed (where it applies), batched and cached (where they do)

    def monthly(self, amount: Decimal | None) -> Decimal | None:
        return None if amount is None else amount * self.month_factor

    @property
    def today_monthly(self) -> Decimal | None:
        return self.monthly(self.today_in_file)

    @property
    def batch_alone_monthly(self) -> Decimal | None:
        return self.monthly(self.batch_alone_in_file)

    @property
    def batch_cache_monthly(self) -> Decimal | None:
        return self.monthly(self.batch_cache_in_file)

    @property
    def routed_today_monthly(self) -> Decimal | None:
        return self.monthly(self.routed_today_in_file)

    @property
    def all_levers_monthly(self) -> Decimal | None:
        return self.monthly(self.all_levers_in_file)

    @property
    def saving_share(self) -> Decimal | None:
        """The share of today's spend that batch + cache saves."""
        if not self.today_in_file or self.batch_cache_in_file is None:
            return None
        return 1 - self.batch_cache_in_file / self.today_in_file

    @property
    def all_levers_saving_share(self) -> Decimal | None:
        if not self.today_in_file or self.all_levers_in_file is None:
            return None
        return 1 - self.all_levers_in_file / self.today_in_file


def usage_today(record: TrafficRecord) -> Usage:
    return Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                 cache_write_5m_tokens=record.cache_creation_input_tokens,
                 cache_read_tokens=record.cache_read_input_tokens)


def row_cost(prices: PriceTable, usage: Usage, model: str, requests: int, *, batch: bool) -> Decimal:
    """Dollars for a row of ``requests`` requests whose tokens are summed in ``usage``: a long-prompt
    band is decided on the average request, not on the sum (forty short prompts are not one long one)."""
    per_request = Usage(input_tokens=usage.total_input_tokens // max(requests, 1))
    total = prices.price(model).rates_for(per_request).dollars(usage, cached=True)
    return total * prices.batch_discount if batch else total


def _spend(records: Iterable[TrafficRecord], prices: PriceTable, *, batch: bool) -> Decimal:
    costs = (row_cost(prices, usage_today(r), r.model, r.requests, batch=batch) for r in records)
    return sum(costs, Decimal(0))


def unknown_models(records: Iterable[TrafficRecord], prices: PriceTable) -> dict[str, int]:
    """Models the price table does not know, with their request counts."""
    unknown: dict[str, int] = defaultdict(int)
    for r in records:
        if r.model not in prices.models:
            unknown[r.model] += r.requests
    return dict(sorted(unknown.items()))


def unpriced_reason(unknown: dict[str, int], prices: PriceTable) -> str | None:
    """Why the feature cannot be priced (each unknown model, with its request count), or None."""
    if not unknown:
        return None
    parts = []
    for model, n in unknown.items():
        try:
            prices.price(model)
        except UnknownModel as exc:
            parts.append(f"unpriced ({n:,} request{'s' if n != 1 else ''}): {exc}")
    return " ".join(parts)


def project(records: Sequence[TrafficRecord], prices: PriceTable, month_factor: Decimal, *,
            migrate: bool, routed: Sequence[TrafficRecord] | None = None) -> Projection:
    """Today's spend; with ``migrate``, also batch alone and batch + cache; with ``routed`` (the rows
    after the routing lever moved some), also routed and all three levers together."""
    unknown = unknown_models(records, prices)
    if unknown:
        return Projection(priced=False, unpriced_reason=unpriced_reason(unknown, prices), unknown_models=unknown,
                          month_factor=month_factor)
    today = _spend(records, prices, batch=False)
    projection = Projection(priced=True, today_in_file=today, month_factor=month_factor,
                            all_levers_in_file=today)
    if routed is not None:
        projection.routed_today_in_file = projection.all_levers_in_file = _spend(routed, prices, batch=False)
    if not migrate:
        return projection
    alone = _spend(records, prices, batch=True)
    saved_by_caching, notes, cached = _caching(records, prices)
    projection.batch_alone_in_file = alone
    projection.batch_cache_in_file = projection.all_levers_in_file = alone - saved_by_caching
    projection.caching_notes = notes
    projection.cached_requests = cached
    if routed is not None:
        projection.all_levers_in_file = _spend(routed, prices, batch=True) - _caching(routed, prices)[0]
    return projection


def _caching(records: Sequence[TrafficRecord], prices: PriceTable) -> tuple[Decimal, list[str], int]:
    """What caching shared prefixes saves on top of batch alone, notes on each prefix, requests that read one."""
    groups: dict[tuple[str, str], list[TrafficRecord]] = defaultdict(list)
    without_length = 0
    for r in records:
        if r.prefix_hash is None:
            continue
        if r.prefix_tokens is None:
            without_length += r.requests
            continue
        groups[(r.model, r.prefix_hash)].append(r)

    notes: list[str] = []
    saved = Decimal(0)
    cached_requests = 0
    lone = 0
    for (model, prefix_hash), rows in sorted(groups.items()):
        n = sum(r.requests for r in rows)
        if n < MIN_REQUESTS_SHARING_A_PREFIX:
            lone += n
            continue
        tokens = min(r.prefix_tokens for r in rows)
        price = prices.price(model)
        label = f"prefix {prefix_hash!r} ({tokens:,} tokens, {n:,} requests, {model})"
        if tokens < price.min_cacheable_tokens:
            notes.append(f"{label} is under {model}'s minimum cacheable length of "
                         f"{price.min_cacheable_tokens:,} tokens: no caching saving")
            continue
        by_day: dict[date, list[TrafficRecord]] = defaultdict(list)
        for r in rows:
            by_day[r.day].append(r)
        group_saved = Decimal(0)
        days_cached = 0
        for day_rows in by_day.values():
            day_saved, reads = _cache_one_day(day_rows, tokens, model, prices)
            if day_saved > 0:
                group_saved += day_saved
                days_cached += 1
                cached_requests += reads
        saved += group_saved
        inconsistent = " (rows disagree on its length: the shortest is used)" if len(
            {r.prefix_tokens for r in rows}) > 1 else ""
        if days_cached:
            notes.append(f"{label}{inconsistent}: written once a day at the 1-hour rate on {days_cached} of "
                         f"{len(by_day)} day(s) and read by the day's other requests")
        else:
            notes.append(f"{label}{inconsistent}: too few requests a day for a cache write to pay off")
    if lone:
        notes.append(f"{lone:,} request(s) carry a prefix_hash no other request of the feature shares: not cached")
    if without_length:
        notes.append(f"{without_length:,} request(s) have a prefix_hash but no prefix_tokens: not cached")
    if not groups and not without_length:
        notes.append("no prefix_hash in the rows: no shared prefix to cache, batch alone only")
    return saved, notes, cached_requests


def _cache_one_day(rows: list[TrafficRecord], prefix_tokens: int, model: str,
                   prices: PriceTable) -> tuple[Decimal, int]:
    """Batch alone minus batch with the prefix written once and read by the rest (never below zero)."""
    n = sum(r.requests for r in rows)
    alone = _spend(rows, prices, batch=True)
    cached = row_cost(prices, Usage(
        input_tokens=sum(r.prompt_tokens for r in rows) - n * prefix_tokens,
        output_tokens=sum(r.output_tokens for r in rows),
        cache_write_1h_tokens=prefix_tokens,
        cache_read_tokens=(n - 1) * prefix_tokens,
    ), model, n, batch=True)
    return (alone - cached, n - 1) if cached < alone else (Decimal(0), 0)
