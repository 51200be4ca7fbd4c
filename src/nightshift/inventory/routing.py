"""The routing lever: a feature's work that a cheaper model is documented for, priced on that model.

The rule, kept conservative (a projection, to be proven by ``nightshift trial`` before switching):

* The kind of work is what the rows say in their optional ``task`` field; the inventory never
  guesses it from a feature's name.
* Claude Haiku 5.5 is documented for classification, extraction and routing (:data:`DOCUMENTED_FOR`,
  with its page and the date it was read), so rows whose ``task`` is one of those are routable.
* A feature gets the lever only when at least ``MOST_REQUESTS_SHARE`` of its requests are routable
  (a feature that mixes kinds of work is split before it is routed), and then only its routable
  rows move, and only those on a model where they cost more than they would on Haiku 5.5.
* Tokens: Haiku 5.5 uses the newer tokenizer of Claude 4.7 and later models, on which the same
  text counts about 30% more tokens than on Claude Haiku 4.5 (same page); a row from a model not
  known to share that tokenizer has its token counts raised by :data:`OLDER_TOKENIZER_FACTOR`
  (its cacheable prefix is not raised, so caching is not overstated). Output is taken as recorded:
  Haiku 5.5 thinks by default and may write more, which only a trial measures.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from nightshift.costs import PriceTable
from nightshift.inventory.classify import MOST_REQUESTS_SHARE
from nightshift.inventory.records import TrafficRecord
from nightshift.inventory.savings import row_cost, usage_today

ROUTE_TO = "claude-haiku-5-5"
#: "Claude Haiku 5.5 is built for high-volume, latency-sensitive work such as classification,
#: routing, extraction, and subagent tasks" (the page's own words; read on the date below).
DOCUMENTED_FOR = frozenset({"classification", "extraction", "routing"})
SOURCE_URL = "https://platform.claude.com/docs/en/models/haiku-5-5/overview"
SOURCE_READ_ON = "2026-12-07"
#: "the same text counts as approximately 30% more tokens than on Claude Haiku 4.5" (same page).
OLDER_TOKENIZER_FACTOR = Fraction(13, 10)
#: Priced models known to use the tokenizer of Claude 4.7 and later, the one Haiku 5.5 uses (same page:
#: "It uses the same newer tokenizer as Claude 4.7 and later models").
NEWER_TOKENIZER_MODELS = frozenset({"claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5",
                                    "claude-opus-5-5"})


@dataclass(frozen=True)
class RoutingPlan:
    target: str
    requests: int
    task_requests: int  # requests whose task is one Haiku 5.5 is documented for
    moved_requests: int  # of those, the ones on a model where they cost more than on the target
    from_models: Counter[str]
    records: tuple[TrafficRecord, ...]  # the feature's rows, the moved ones on the target
    explanation: str | None  # None when no row names a task

    @property
    def eligible(self) -> bool:
        return self.moved_requests > 0


def plan_routing(records: Sequence[TrafficRecord], prices: PriceTable) -> RoutingPlan:
    """Which of a feature's rows the routing lever moves to :data:`ROUTE_TO`, and why (or why not)."""
    requests = sum(r.requests for r in records)
    tasks: Counter[str] = Counter()
    for r in records:
        if r.task is not None:
            tasks[r.task] += r.requests
    routable = sum(n for task, n in tasks.items() if task in DOCUMENTED_FOR)
    unchanged = RoutingPlan(ROUTE_TO, requests, routable, 0, Counter(), tuple(records), None)
    if not tasks:
        return unchanged
    of_n = f"{requests:,} request{'s' if requests != 1 else ''}"
    mix = ", ".join(f"`{task}` {n / requests:.0%}" for task, n in tasks.most_common())
    if not routable:
        return _with(unchanged, f"None of the {of_n} is {_documented()} work ({mix}): no routing lever.")
    if routable / requests < MOST_REQUESTS_SHARE:
        return _with(unchanged, f"{routable / requests:.0%} of {of_n} are {_documented()} work ({mix}), "
                                f"under {MOST_REQUESTS_SHARE:.0%}: split the feature before routing it; "
                                f"no routing lever.")
    moved: Counter[str] = Counter()
    rows = []
    priced = prices.models
    for r in records:
        candidate = on_target(r) if r.task in DOCUMENTED_FOR and r.model in priced else None
        if candidate is not None and _cost(candidate, prices) < _cost(r, prices):
            moved[r.model] += r.requests
            rows.append(candidate)
        else:
            rows.append(r)
    share = "All" if routable == requests else f"{routable / requests:.0%} of"
    what = f"{share} {of_n} are {_documented()} work ({mix}), which Claude Haiku 5.5 is documented for"
    if not moved:
        return _with(unchanged, f"{what}, but they already run where they cost no more than on {ROUTE_TO}.")
    count = sum(moved.values())
    older = [m for m in moved if m not in NEWER_TOKENIZER_MODELS]
    factor = f"{float(OLDER_TOKENIZER_FACTOR):g}"
    tokens = f"; tokens x{factor} for {_names(older)} (older tokenizer)" if older else ""
    return RoutingPlan(ROUTE_TO, requests, routable, count, moved, tuple(rows),
                       f"{what}: the {count:,} on {_names(list(moved))} priced on {ROUTE_TO}{tokens}; output "
                       f"as recorded. A projection: prove it with `nightshift trial` before switching.")


def on_target(record: TrafficRecord) -> TrafficRecord:
    """``record`` sent to :data:`ROUTE_TO`: its tokens as that model's tokenizer would count them."""
    if record.model in NEWER_TOKENIZER_MODELS:
        return record.model_copy(update={"model": ROUTE_TO})

    def more(tokens: int) -> int:
        return math.ceil(tokens * OLDER_TOKENIZER_FACTOR)

    prefix = record.prefix_tokens
    return record.model_copy(update={
        "model": ROUTE_TO, "input_tokens": more(record.input_tokens),
        "output_tokens": more(record.output_tokens),
        "cache_creation_input_tokens": more(record.cache_creation_input_tokens),
        "cache_read_input_tokens": more(record.cache_read_input_tokens),
        "prefix_tokens": None if prefix is None else math.floor(prefix * OLDER_TOKENIZER_FACTOR)})


def rule_line() -> str:
    return (f"Routing: a feature where at least {MOST_REQUESTS_SHARE:.0%} of requests name a `task` of "
            f"{_documented()} (what Claude Haiku 5.5 is documented for: {SOURCE_URL}, read "
            f"{SOURCE_READ_ON}) has those rows priced on {ROUTE_TO} where that costs less; tokens from a "
            f"model with an older tokenizer x{float(OLDER_TOKENIZER_FACTOR):g}, output as recorded. Rows "
            f"without a `task` are never routed. A projection, not a measurement: run `nightshift trial` on "
            f"the workload and switch only when its agreement holds.")


def _cost(record: TrafficRecord, prices: PriceTable) -> Decimal:
    return row_cost(prices, usage_today(record), record.model, record.requests, batch=False)


def _with(plan: RoutingPlan, explanation: str) -> RoutingPlan:
    return RoutingPlan(plan.target, plan.requests, plan.task_requests, 0, Counter(), plan.records,
                       explanation)


def _documented() -> str:
    return "/".join(sorted(DOCUMENTED_FOR))


def _names(models: list[str]) -> str:
    return ", ".join(f"`{m}`" for m in sorted(models))
