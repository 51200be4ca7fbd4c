"""One traffic file's inventory: per feature, its verdict and what migrating (and routing) it would save."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

from nightshift.costs import PriceTable, price_table
from nightshift.inventory.classify import BATCH_READ_AFTER_SECONDS, Classification, Verdict, classify
from nightshift.inventory.records import ParsedTraffic, TrafficRecord
from nightshift.inventory.routing import RoutingPlan, plan_routing
from nightshift.inventory.savings import DEFAULT_DAYS_IN_MONTH, Projection, Span, project, span_of

VERDICT_ORDER = {Verdict.BATCH: 0, Verdict.GRAY: 1, Verdict.LIVE: 2}


@dataclass
class FeatureInventory:
    feature: str
    requests: int
    models: Counter[str]
    classification: Classification
    projection: Projection
    routing: RoutingPlan

    @property
    def verdict(self) -> Verdict:
        return self.classification.verdict

    @property
    def after_migration_monthly(self) -> Decimal | None:
        """Batch + cache for a batch candidate; today's spend for everything else (it stays as it is)."""
        p = self.projection
        return p.batch_cache_monthly if self.verdict is Verdict.BATCH else p.today_monthly


@dataclass
class Totals:
    today_monthly: Decimal
    batch_alone_monthly: Decimal  # candidates at batch alone, the rest as today
    after_migration_monthly: Decimal  # candidates at batch + cache, the rest as today
    unpriced_features: list[str]
    routed_monthly: Decimal = Decimal(0)  # routable features routed, every feature on its path of today
    all_levers_monthly: Decimal = Decimal(0)  # routing where it applies, then batch + cache for candidates

    @property
    def saving_share(self) -> Decimal | None:
        return 1 - self.after_migration_monthly / self.today_monthly if self.today_monthly else None

    @property
    def all_levers_saving_share(self) -> Decimal | None:
        return 1 - self.all_levers_monthly / self.today_monthly if self.today_monthly else None


@dataclass
class Inventory:
    parsed: ParsedTraffic
    span: Span
    days_in_month: float
    batch_read_after_seconds: float
    prices: PriceTable
    features: list[FeatureInventory]

    @property
    def month_factor(self) -> Decimal:
        return self.span.month_factor(self.days_in_month)

    @property
    def requests(self) -> int:
        return sum(f.requests for f in self.features)

    @property
    def totals(self) -> Totals:
        today = alone = after = routed = all_levers = Decimal(0)
        unpriced = []
        for f in self.features:
            p = f.projection
            if not p.priced:
                unpriced.append(f.feature)
                continue
            today += p.today_monthly
            alone += p.batch_alone_monthly if f.verdict is Verdict.BATCH else p.today_monthly
            after += f.after_migration_monthly
            routed += p.routed_today_monthly if p.routed_today_in_file is not None else p.today_monthly
            all_levers += p.all_levers_monthly
        return Totals(today, alone, after, unpriced, routed, all_levers)


def build_inventory(parsed: ParsedTraffic, *, days_in_month: float = DEFAULT_DAYS_IN_MONTH,
                    batch_read_after_seconds: float = BATCH_READ_AFTER_SECONDS,
                    prices: PriceTable | None = None) -> Inventory:
    prices = prices or price_table()
    span = span_of(parsed.records)
    factor = span.month_factor(days_in_month)
    by_feature: dict[str, list[TrafficRecord]] = defaultdict(list)
    for record in parsed.records:
        by_feature[record.feature].append(record)
    features = []
    for feature, records in by_feature.items():
        verdict = classify(feature, records, batch_read_after_seconds=batch_read_after_seconds)
        models: Counter[str] = Counter()
        for r in records:
            models[r.model] += r.requests
        routing = plan_routing(records, prices)
        projection = project(records, prices, factor, migrate=verdict.verdict is Verdict.BATCH,
                             routed=routing.records if routing.eligible else None)
        features.append(FeatureInventory(
            feature=feature, requests=verdict.evidence.requests, models=models, classification=verdict,
            projection=projection, routing=routing))
    features.sort(key=lambda f: (VERDICT_ORDER[f.verdict], -(f.projection.today_in_file or Decimal(-1)), f.feature))
    return Inventory(parsed, span, days_in_month, batch_read_after_seconds, prices, features)
