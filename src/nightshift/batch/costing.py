"""Cost decisions and records of the batch path: the caching plan and the run's cost record.

The caching plan is made once per run, before the first batch: measure the stable prefix
with the token-counting endpoint, say when it is too short to be cached, and decide with the
cost model whether one synchronous warm-up request pays for itself.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from nightshift.backends.base import BatchBackend
from nightshift.batch.ledger import Run
from nightshift.costs import MILLION, PriceTable, Usage
from nightshift.ledger import cascades as ledger_cascades
from nightshift.ledger import costs as ledger_costs
from nightshift.ledger import items
from nightshift.workloads.definition import Workload
from nightshift.workloads.requests import stable_prefix
from nightshift.workloads.shape import RequestShape

log = logging.getLogger(__name__)

WARMUP_MESSAGE = "Warm-up request: reply with nothing."


@dataclass
class CachingPlan:
    prefix_tokens: int
    min_cacheable_tokens: int
    cacheable: bool
    warmup: bool
    reason: str
    expected_saving_usd: float = 0.0
    warmup_cost_estimate_usd: float = 0.0
    warmup_cost_usd: float = 0.0
    warmup_usage: dict[str, int] | None = None


def decide_warmup(workload: Workload, prices: PriceTable, *, prefix_tokens: int, requests: int,
                  on: date | None = None) -> CachingPlan:
    """Warm up only when the expected saving exceeds the warm-up request's full-price cost.

    Without a warm-up, a batch's items run in parallel and several may write the prefix before
    any can read it: we expect ``batch.expected_cache_hit_rate`` of them to read. With a
    warm-up, the prefix is written once at the standard rate and every item can read it.
    """
    price = prices.price(workload.model, on)
    minimum = price.min_cacheable_tokens
    if prefix_tokens < minimum:
        return CachingPlan(prefix_tokens, minimum, False, False,
                           f"the stable prefix is {prefix_tokens} tokens, under {workload.model}'s minimum cacheable "
                           f"length of {minimum}: it is not cached (the breakpoint is harmless but earns nothing)")
    rates = price.rates  # a warm-up prefix is far under any long-prompt band
    write = rates.cache_write_1h if workload.prompt.cache_ttl == "1h" else rates.cache_write_5m
    missed = Decimal(requests) * Decimal(str(1 - workload.batch.expected_cache_hit_rate))
    saving = missed * prefix_tokens * (write - rates.cache_read) * prices.batch_discount / MILLION
    warmup_cost = (prefix_tokens * write + rates.output) / MILLION
    mode = workload.batch.warmup
    warmup = mode == "always" or (mode == "auto" and saving > warmup_cost)
    reason = (f"warm-up {mode}" if mode != "auto" else
              f"expected saving ${saving:.4f} {'>' if warmup else '<='} warm-up cost ${warmup_cost:.4f}")
    return CachingPlan(prefix_tokens, minimum, True, warmup, reason, float(saving), float(warmup_cost))


def plan_caching(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, run: Run,
                 prices: PriceTable, shape: RequestShape | None = None) -> CachingPlan:
    """Measure the prefix, decide on a warm-up (and send it), and record both on the run, once."""
    recorded = ledger_costs.caching_plan(conn, run.run_pk)
    if recorded:
        return CachingPlan(**recorded)
    prefix = stable_prefix(workload, shape)
    counted = backend.count_tokens({"model": workload.model, **prefix, "messages": [{"role": "user", "content": "."}]})
    requests = items.pending_count(conn, run.run_pk)
    plan = decide_warmup(workload, prices, prefix_tokens=counted, requests=requests, on=run.billed_on)
    if plan.warmup:
        reply = backend.create_message(
            {"model": workload.model, "max_tokens": 1, **prefix, "messages": [{"role": "user", "content": WARMUP_MESSAGE}]})
        usage = usage_of(reply.get("usage") or {}, workload)
        plan.warmup_usage = asdict(usage)
        plan.warmup_cost_usd = float(prices.cost(usage, workload.model, batch=False, on=run.billed_on))
    (log.info if plan.cacheable else log.warning)("caching plan for run %s: %s", run.run_pk, plan.reason)
    ledger_costs.record_caching_plan(conn, run.run_pk, prefix_tokens=plan.prefix_tokens,
                                     warmup_cost_usd=plan.warmup_cost_usd, plan=asdict(plan))
    conn.commit()
    return plan


def usage_of(usage: dict[str, Any], workload: Workload) -> Usage:
    """A reply's usage; cache writes without a TTL split count under the workload's TTL."""
    split = usage.get("cache_creation") or {}
    written = usage.get("cache_creation_input_tokens") or 0
    five = split.get("ephemeral_5m_input_tokens")
    hour = split.get("ephemeral_1h_input_tokens")
    if five is None and hour is None:
        five, hour = (0, written) if workload.prompt.cache_ttl == "1h" else (written, 0)
    return Usage(input_tokens=usage.get("input_tokens") or 0, output_tokens=usage.get("output_tokens") or 0,
                 cache_write_5m_tokens=five or 0, cache_write_1h_tokens=hour or 0,
                 cache_read_tokens=usage.get("cache_read_input_tokens") or 0)


def record_run_costs(conn: psycopg.Connection, run: Run, model: str, prices: PriceTable,
                     models: list[str] | None = None) -> dict[str, Any]:
    """The run's cost record: actual (items + warm-up) against both streaming baselines, each
    priced with the row in force on the day the run was billed, and its cost by model. A cascade run
    (``models``, in order) prices each attempt's tokens on the model it was sent to, and records what
    it would have cost on the last model alone too (:func:`cost_by_model`)."""
    price = prices.price(model, run.billed_on)
    over = price.long_prompt_over if price.long_prompt_over is not None else 2**62
    # Requests over the price row's long-prompt threshold (if it has one) pay other rates on every token.
    groups = ledger_costs.usage_groups(conn, run.run_pk, over)
    warmup, caching = ledger_costs.warmup(conn, run.run_pk)
    # The warm-up request is part of the night's work: its tokens count in both baselines too.
    parts = [Usage(*tokens) for _, *tokens, _, _ in groups]
    parts.append(Usage(**((caching or {}).get("warmup_usage") or {})))
    usage = sum(parts, Usage())
    items_cost = sum((cost for *_, cost, _ in groups), Decimal(0))
    # a proven late duplicate was billed too, though none of its results is landed
    duplicates = ledger_costs.billed_duplicates(conn, run.run_pk)
    billed_failed = sum(billed for *_, billed in groups)

    def streaming(cached: bool) -> Decimal:
        return sum((prices.cost(part, model, batch=False, cached=cached, on=run.billed_on) for part in parts),
                   Decimal(0))

    streaming_cached, streaming_uncached = streaming(True), streaming(False)
    models = models or [model]
    by_model = cost_by_model(conn, run, models, prices, (caching or {}).get("warmup_usage"))
    cascade = len(models) > 1  # a single model's night has its one line, and no other model to compare with
    if cascade:
        streaming_cached, streaming_uncached = by_model.streaming_cached_usd, by_model.streaming_uncached_usd
    ledger_cascades.record_cost_by_model(conn, run.run_pk, by_model.models,
                                         by_model.last_model_alone_usd if cascade else None)
    record = {
        "cost_usd": items_cost + warmup + duplicates,
        "streaming_cached_usd": streaming_cached,
        "streaming_uncached_usd": streaming_uncached,
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_write_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
        "cache_read_tokens": usage.cache_read_tokens, "billed_failed": billed_failed,
        "prices_as_of": prices.as_of,
    }
    ledger_costs.record_run_costs(conn, run.run_pk, record)
    return record


@dataclass
class CostByModel:
    """A cascade night's cost by model. ``last_model_alone_usd`` is a re-pricing, not a measurement:
    the items the last model answered (or was billed for) count at what they cost on it; every other
    item's attempts count at the last model's batch rates for the same tokens (its API usage on the
    cheaper model, which is what the ledger has; the last model might have used other counts); the
    warm-up at the last model's standard rate."""

    models: dict[str, dict[str, Any]]
    last_model_alone_usd: Decimal
    streaming_cached_usd: Decimal
    streaming_uncached_usd: Decimal


def cost_by_model(conn: psycopg.Connection, run: Run, models: list[str], prices: PriceTable,
                  warmup_usage: dict[str, int] | None = None) -> CostByModel:
    """Per model: items answered, billed attempts, tokens and cost (each attempt at the batch rate of the
    model it was sent to); and the night on the last model alone (see :class:`CostByModel`)."""
    last = models[-1]
    last_price = prices.price(last, run.billed_on)
    over = last_price.long_prompt_over if last_price.long_prompt_over is not None else 2**62
    by_model: dict[str, dict[str, Any]] = {
        m: {"items_answered": 0, "attempts": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0)}
        for m in models}
    warmup = Usage(**(warmup_usage or {}))
    alone = last_price.rates.dollars(warmup, cached=True)
    cached = prices.cost(warmup, models[0], batch=False, cached=True, on=run.billed_on)
    uncached = prices.cost(warmup, models[0], batch=False, cached=False, on=run.billed_on)
    for model, reached_last, long_prompt, answered, attempts, *tokens, cost in ledger_cascades.usage_by_model(
            conn, run.run_pk, last, over):
        usage = Usage(*tokens)
        entry = by_model.setdefault(model, {"items_answered": 0, "attempts": 0, "input_tokens": 0,
                                            "output_tokens": 0, "cost_usd": Decimal(0)})
        entry["items_answered"] += answered
        entry["attempts"] += attempts
        entry["input_tokens"] += usage.total_input_tokens
        entry["output_tokens"] += usage.output_tokens
        entry["cost_usd"] += cost
        cached += prices.cost(usage, model, batch=False, cached=True, on=run.billed_on)
        uncached += prices.cost(usage, model, batch=False, cached=False, on=run.billed_on)
        if model == last:
            alone += cost
        elif not reached_last:
            rates = last_price.long_prompt if long_prompt and last_price.long_prompt else last_price.rates
            alone += rates.dollars(usage, cached=True) * prices.batch_discount
    recorded = {m: {**e, "cost_usd": float(e["cost_usd"])} for m, e in by_model.items()}
    return CostByModel(recorded, alone, cached, uncached)
