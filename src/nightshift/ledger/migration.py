"""Moving a workload from streaming to batch: its recorded mode, its shadow table, the parity evidence.

``nightshift.workload_modes``, ``nightshift.shadow_<workload>``, ``nightshift.stream_usage`` (what
the streaming path spent) and ``nightshift.parity_reports``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.ledger.status import DeliveryMode
from nightshift.workloads.definition import Workload


def recorded_mode(conn: psycopg.Connection, workload: str) -> DeliveryMode | None:
    row = conn.execute("SELECT mode FROM nightshift.workload_modes WHERE workload = %s", (workload,)).fetchone()
    return DeliveryMode(row[0]) if row else None


def record_mode(conn: psycopg.Connection, workload: str, mode: DeliveryMode, *,
                agreement: float | None = None, report: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO nightshift.workload_modes (workload, mode, agreement, report) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (workload) DO UPDATE SET mode = EXCLUDED.mode, agreement = EXCLUDED.agreement, "
        "report = EXCLUDED.report, changed_at = now(), changed_by = current_user",
        (workload, DeliveryMode(mode), agreement, Jsonb(report) if report is not None else None))


def shadow_table(workload: Workload) -> str:
    return f"nightshift.shadow_{workload.name}"


def ensure_shadow_table(conn: psycopg.Connection, workload: Workload) -> None:
    """The destination's twin: same columns, key and checks, none of its foreign keys."""
    schema, table = workload.destination.table.split(".")
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                         "INCLUDING INDEXES)").format(sql.Identifier("nightshift", f"shadow_{workload.name}"),
                                                      sql.Identifier(schema, table)))


def paired_rows(conn: psycopg.Connection, workload: Workload) -> Iterator[tuple]:
    """Each key the shadow table or a shadow run's destination row has (the streaming answer to a
    request a shadow run also answered, by the ledger's delivery record or the row's own request_id
    column): ``(key as text, in the destination, in the shadow, then per destination column:
    destination value, shadow value)``."""
    key = workload.destination.key
    columns = list(workload.destination.columns)
    dest_schema, dest_table = workload.destination.table.split(".")
    shadow_schema, shadow_name = shadow_table(workload).split(".")
    query = sql.SQL(
        "SELECT coalesce(d.{key}, s.{key})::text, d.{key} IS NOT NULL, s.{key} IS NOT NULL, {pairs} "
        "FROM {dest} d FULL JOIN {shadow} s ON s.{key} = d.{key} "
        "WHERE s.{key} IS NOT NULL OR coalesce((SELECT dl.request_id FROM nightshift.deliveries dl "
        "  WHERE dl.destination = %s AND dl.source_key = d.{key}::text), {own_request_id}) IN ("
        "  SELECT request_id FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) "
        "  WHERE r.workload = %s AND r.mode = 'shadow') "
        "ORDER BY 1").format(
        key=sql.Identifier(key),
        own_request_id=(sql.SQL("d.{}").format(sql.Identifier(request_id)) if (request_id := (
            workload.destination.delivery.request_id)) else sql.SQL("NULL::bigint")),
        pairs=sql.SQL(", ").join(sql.SQL("d.{c}, s.{c}").format(c=sql.Identifier(c)) for c in columns),
        dest=sql.Identifier(dest_schema, dest_table), shadow=sql.Identifier(shadow_schema, shadow_name))
    with conn.cursor() as cur:
        yield from cur.execute(query, (workload.destination.table, workload.name))


def shadow_costs(conn: psycopg.Connection, workload: str) -> tuple[Decimal, Decimal, int]:
    """``(streaming cost, batch cost, requests)`` over exactly the requests both paths answered."""
    return conn.execute(
        """
        SELECT coalesce(sum(u.cost_usd), 0), coalesce(sum(i.cost_usd), 0), count(*)
          FROM nightshift.items i JOIN nightshift.runs r USING (run_pk)
          JOIN nightshift.stream_usage u ON u.request_id = i.request_id
         WHERE r.workload = %s AND r.mode = 'shadow' AND i.cost_usd IS NOT NULL
        """, (workload,)).fetchone()


def record_parity_report(conn: psycopg.Connection, workload: str, *, rows_compared: int, rows_agreeing: int,
                         agreement: Decimal, report: dict[str, Any]) -> int:
    """Store a parity report; returns its ``report_pk``."""
    return conn.execute(
        "INSERT INTO nightshift.parity_reports (workload, rows_compared, rows_agreeing, agreement, report) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING report_pk",
        (workload, rows_compared, rows_agreeing, agreement, Jsonb(report))).fetchone()[0]


def record_stream_usage(conn: psycopg.Connection, *, request_id: int, workload: str, model: str,
                        input_tokens: int, output_tokens: int, cache_write_tokens: int,
                        cache_read_tokens: int, cost_usd: Decimal) -> None:
    """What the streaming path spent on one request (the like-for-like side of a parity report's costs)."""
    conn.execute(
        "INSERT INTO nightshift.stream_usage (request_id, workload, model, input_tokens, output_tokens, "
        "cache_write_tokens, cache_read_tokens, cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (request_id) DO UPDATE SET cost_usd = EXCLUDED.cost_usd, created_at = now()",
        (request_id, workload, model, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens,
         cost_usd))
