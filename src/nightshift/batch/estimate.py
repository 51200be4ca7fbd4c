"""A backfill's cost, before any batch is created: rows and tokens per interval, priced.

Tokens are estimated offline as ``ceil(characters / 4)`` (the emulator's formula; real
tokenisers differ by a few tens of percent), outputs as the mean of this workload's past
outputs in the ledger, or ``max_tokens`` when there is no history (an upper bound). Each
interval is priced as the batch path would run it: the prefix written once and read by every
other request when it reaches the model's minimum cacheable length.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg import sql

from nightshift.batch.collect import interval_statement
from nightshift.costs import PriceTable, Usage
from nightshift.ledger import items
from nightshift.workloads.definition import Workload
from nightshift.workloads.requests import InvalidInput, render_item, stable_prefix

TURN_TOKENS = 6  # a user turn plus the assistant priming, as the API counts them
ESTIMATE_ROWS = sql.SQL("SELECT {columns}")


@dataclass
class IntervalEstimate:
    start: datetime
    end: datetime
    rows: int = 0
    invalid_rows: int = 0
    item_tokens: int = 0
    prefix_tokens: int = 0
    output_tokens: int = 0
    batch_usd: Decimal = Decimal(0)
    streaming_usd: Decimal = Decimal(0)


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def prefix_tokens(workload: Workload) -> int:
    prefix = stable_prefix(workload)
    tools = sum(text_tokens(json.dumps(t, sort_keys=True, separators=(",", ":"))) for t in prefix.get("tools", []))
    return tools + sum(text_tokens(block["text"]) for block in prefix["system"])


def typical_output_tokens(conn: psycopg.Connection, workload: Workload) -> int:
    mean = items.mean_output_tokens(conn, workload.name)
    return math.ceil(mean) if mean else workload.max_tokens


def estimate(conn: psycopg.Connection, workload: Workload, prices: PriceTable,
             intervals: Iterable[tuple[datetime, datetime]], *,
             reprocess: bool = False) -> list[IntervalEstimate]:
    """Each of ``intervals`` (start, end) priced: pass the backfill's own (see
    :func:`nightshift.backfill_intervals.backfill_intervals`), so the estimate covers what it will run."""
    prefix = prefix_tokens(workload)
    outputs = typical_output_tokens(conn, workload)
    cacheable = prefix >= prices.price(workload.model).min_cacheable_tokens
    columns = [workload.source.key, *workload.source.columns]
    query = interval_statement(workload, ESTIMATE_ROWS, sql.SQL(""))
    estimates = []
    for start, end in intervals:
        interval = IntervalEstimate(start, end, prefix_tokens=prefix)
        with conn.cursor(name="nightshift_estimate") as cursor:
            cursor.execute(query, {"start": interval.start, "end": interval.end, "reprocess": reprocess,
                                   "workload": workload.name, "version": workload.prompt_version, "limit": None,
                                   "destination": workload.destination.table})
            for values in cursor:
                try:
                    interval.item_tokens += text_tokens(render_item(workload, dict(zip(columns, values)))) + TURN_TOKENS
                    interval.rows += 1
                except InvalidInput:
                    interval.invalid_rows += 1
        conn.commit()
        _price(interval, workload, prices, outputs, cacheable)
        estimates.append(interval)
    return estimates


def _price(interval: IntervalEstimate, workload: Workload, prices: PriceTable, outputs: int, cacheable: bool) -> None:
    n, prefix = interval.rows, interval.prefix_tokens
    interval.output_tokens = n * outputs
    if not n:
        return
    if cacheable:
        usage = Usage(input_tokens=interval.item_tokens, output_tokens=interval.output_tokens,
                      cache_write_1h_tokens=prefix, cache_read_tokens=(n - 1) * prefix)
    else:
        usage = Usage(input_tokens=interval.item_tokens + n * prefix, output_tokens=interval.output_tokens)
    interval.batch_usd = prices.cost(usage, workload.model, batch=True)
    interval.streaming_usd = prices.cost(usage, workload.model, batch=False, cached=False)
