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
    ensure_twin_table(conn, workload, shadow_table(workload))


def ensure_twin_table(conn: psycopg.Connection, workload: Workload, twin: str) -> None:
    """``twin`` (schema-qualified) as the destination's twin: same columns, key and checks, none of its
    foreign keys. Shadow runs and model trials write twins, never the destination."""
    schema, table = workload.destination.table.split(".")
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                         "INCLUDING INDEXES)").format(sql.Identifier(*twin.split(".")),
                                                      sql.Identifier(schema, table)))


def shadow_table_exists(conn: psycopg.Connection, workload: Workload) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (shadow_table(workload),)).fetchone()[0]


def paired_rows(conn: psycopg.Connection, workload: Workload) -> Iterator[tuple]:
    """One row per key that has a streaming answer or a shadow answer: ``(key as text, has a streaming
    answer, has a shadow row, the shadow run failed it, then per destination column: destination value,
    shadow value)``.

    A streaming answer is a destination row the streaming path delivered (its request, by the ledger's
    delivery record or the row's own request_id column, is one the streaming path paid for), so rows a
    batch run wrote are never taken for the streaming side. A shadow answer is the shadow table's row,
    or, where it has none, a shadow run's failed item for the key: a failure the switch would ship.
    """
    key = workload.destination.key
    columns = list(workload.destination.columns)
    dest_schema, dest_table = workload.destination.table.split(".")
    shadow_schema, shadow_name = shadow_table(workload).split(".")
    request_id = workload.destination.delivery.request_id
    query = sql.SQL(
        "WITH streamed AS ("
        "  SELECT d.{key}::text AS k, {dest_columns} FROM {dest} d"
        "  LEFT JOIN nightshift.deliveries dl ON dl.destination = %(destination)s AND dl.source_key = d.{key}::text"
        "  WHERE coalesce(dl.request_id, {own_request_id}) IN ("
        "    SELECT request_id FROM nightshift.stream_usage WHERE workload = %(workload)s)"
        "), shadowed AS ("
        "  SELECT s.{key}::text AS k, {shadow_columns} FROM {shadow} s"
        "), shadow_failed AS ("
        "  SELECT DISTINCT i.source_key AS k FROM nightshift.items i JOIN nightshift.runs r USING (run_pk)"
        "  WHERE r.workload = %(workload)s AND r.mode = 'shadow' AND i.status = 'failed'"
        ") "
        "SELECT coalesce(st.k, sh.k, f.k), st.k IS NOT NULL, sh.k IS NOT NULL, sh.k IS NULL AND f.k IS NOT NULL, "
        "{pairs} "
        "FROM streamed st FULL JOIN shadowed sh ON sh.k = st.k "
        "FULL JOIN shadow_failed f ON f.k = coalesce(st.k, sh.k) "
        "ORDER BY 1").format(
        key=sql.Identifier(key),
        own_request_id=sql.SQL("d.{}").format(sql.Identifier(request_id)) if request_id else sql.SQL("NULL::bigint"),
        dest_columns=sql.SQL(", ").join(sql.SQL("d.{} AS {}").format(sql.Identifier(c), sql.Identifier(f"d_{c}"))
                                        for c in columns),
        shadow_columns=sql.SQL(", ").join(sql.SQL("s.{} AS {}").format(sql.Identifier(c), sql.Identifier(f"s_{c}"))
                                          for c in columns),
        pairs=sql.SQL(", ").join(sql.SQL("st.{}, sh.{}").format(sql.Identifier(f"d_{c}"), sql.Identifier(f"s_{c}"))
                                 for c in columns),
        dest=sql.Identifier(dest_schema, dest_table), shadow=sql.Identifier(shadow_schema, shadow_name))
    with conn.cursor() as cur:
        yield from cur.execute(query, {"destination": workload.destination.table, "workload": workload.name})


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
    """What the streaming path spent on replies to one request (the like-for-like side of a parity report's
    costs), added to what earlier handlings of it recorded: each reply is recorded once, in the
    transaction that acts on it, so a request handled twice costs both handlings."""
    conn.execute(
        "INSERT INTO nightshift.stream_usage AS u (request_id, workload, model, input_tokens, output_tokens, "
        "cache_write_tokens, cache_read_tokens, cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (request_id) DO UPDATE SET model = EXCLUDED.model, "
        "input_tokens = u.input_tokens + EXCLUDED.input_tokens, "
        "output_tokens = u.output_tokens + EXCLUDED.output_tokens, "
        "cache_write_tokens = u.cache_write_tokens + EXCLUDED.cache_write_tokens, "
        "cache_read_tokens = u.cache_read_tokens + EXCLUDED.cache_read_tokens, "
        "cost_usd = u.cost_usd + EXCLUDED.cost_usd, created_at = now()",
        (request_id, workload, model, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens,
         cost_usd))
