"""What a night cost: its caching plan and warm-up, its items' usage, and the cost record on the run.

``nightshift.runs`` carries the record (the ``nightshift.run_costs`` view reads it), ``nightshift.items``
each request's usage and cost, ``nightshift.batches`` what a proven duplicate was billed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb


def caching_plan(conn: psycopg.Connection, run_pk: int) -> dict[str, Any] | None:
    """The caching plan recorded on the run, if one was."""
    return conn.execute("SELECT details -> 'caching' FROM nightshift.runs WHERE run_pk = %s",
                        (run_pk,)).fetchone()[0]


def record_caching_plan(conn: psycopg.Connection, run_pk: int, *, prefix_tokens: int | None,
                        warmup_cost_usd: float, plan: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE nightshift.runs SET prefix_tokens = %s, warmup_cost_usd = %s, "
        "details = details || jsonb_build_object('caching', %s::jsonb) WHERE run_pk = %s",
        (prefix_tokens, warmup_cost_usd, Jsonb(plan), run_pk))


def warmup(conn: psycopg.Connection, run_pk: int) -> tuple[Decimal, dict[str, Any] | None]:
    """``(warm-up cost, caching plan)`` of the run."""
    return conn.execute("SELECT warmup_cost_usd, details -> 'caching' FROM nightshift.runs "
                        "WHERE run_pk = %s", (run_pk,)).fetchone()


# The run's usage in two sums: requests whose prompt is over the price row's long-prompt threshold
# (if it has one) pay other rates on every token, so they are priced apart. An item holds its current
# round's attempt; its earlier attempts (escalated, asked for again, retried) are in nightshift.attempts.
RUN_USAGE = """
WITH spent AS (
    SELECT input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_input_tokens,
           cost_usd, status
      FROM nightshift.items WHERE run_pk = %(run_pk)s
    UNION ALL
    SELECT a.input_tokens, a.output_tokens, a.cache_write_5m_tokens, a.cache_write_1h_tokens,
           a.cache_read_input_tokens, a.cost_usd, 'superseded'
      FROM nightshift.attempts a JOIN nightshift.items i USING (run_pk, custom_id)
     WHERE a.run_pk = %(run_pk)s AND a.round < i.round
)
SELECT input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_input_tokens > %(over)s AS long_prompt,
       coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cache_write_5m_tokens), 0),
       coalesce(sum(cache_write_1h_tokens), 0), coalesce(sum(cache_read_input_tokens), 0),
       coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE status = 'failed' AND cost_usd > 0)
  FROM spent GROUP BY 1
"""


def usage_groups(conn: psycopg.Connection, run_pk: int, over: int) -> list[tuple]:
    """Per side of the long-prompt threshold ``over``: ``(long_prompt, input, output, cache write 5m,
    cache write 1h, cache read, cost, failed requests that were billed)``."""
    return conn.execute(RUN_USAGE, {"run_pk": run_pk, "over": over}).fetchall()


def billed_duplicates(conn: psycopg.Connection, run_pk: int) -> Decimal:
    """What the run's proven late duplicates were billed (none of their results is landed)."""
    return conn.execute("SELECT coalesce(sum(billed_usd), 0) FROM nightshift.batches WHERE run_pk = %s "
                        "AND status = 'abandoned'", (run_pk,)).fetchone()[0]


def record_run_costs(conn: psycopg.Connection, run_pk: int, record: dict[str, Any]) -> None:
    """Write the cost record's columns (each key a column of ``nightshift.runs``) on the run."""
    assignments = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
                                     for column in record)
    conn.execute(sql.SQL("UPDATE nightshift.runs SET {} WHERE run_pk = %(run_pk)s").format(assignments),
                 {**record, "run_pk": run_pk})
