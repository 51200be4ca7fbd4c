"""What ``nightshift report`` reads from the ledger about a workload's latest night."""

from __future__ import annotations

from typing import Any

import psycopg

#: The query that lists every request's outcome, as the report tells its reader to run it.
EVERY_OUTCOME = "SELECT * FROM nightshift.items WHERE run_pk = <run>;"


def latest_run(conn: psycopg.Connection, workload: str) -> tuple[int, str, str, str] | None:
    """``(run_pk, status, model, request shape in words)`` of the workload's latest night, or None (a model
    trial's run is not a night)."""
    return conn.execute(
        "SELECT run_pk, status, model, concat_ws(', ', details -> 'request_shape' ->> 'delivery', "
        "'effort ' || (details -> 'request_shape' ->> 'effort_in_force'), "
        "CASE WHEN (details -> 'request_shape' ->> 'thinks')::boolean THEN 'thinking' END) "
        "FROM nightshift.runs WHERE workload = %s AND mode <> 'trial' ORDER BY run_pk DESC LIMIT 1",
        (workload,)).fetchone()


def outcomes(conn: psycopg.Connection, run_pk: int) -> list[tuple[str, str | None, int]]:
    """``(status, error_type, count)`` of the run's items."""
    return conn.execute(
        "SELECT status, error_type, count(*) FROM nightshift.items WHERE run_pk = %s GROUP BY 1, 2",
        (run_pk,)).fetchall()


def batches(conn: psycopg.Connection, run_pk: int) -> list[tuple[str | None, int, int, str]]:
    """``(backend batch id, round, requests, state)`` of the run's batches, in submission order."""
    return conn.execute(
        "SELECT backend_batch_id, round, request_count, coalesce(processing_status, status) "
        "FROM nightshift.batches WHERE run_pk = %s ORDER BY round, seq", (run_pk,)).fetchall()


def costs(conn: psycopg.Connection, run_pk: int) -> dict[str, Any]:
    """The run's ``nightshift.run_costs`` figures, its prefix size and why it cached as it did."""
    cur = conn.execute("SELECT c.cost_usd, c.streaming_uncached_usd, c.streaming_cached_usd, c.savings_pct, "
                       "c.cache_hit_ratio, c.prefix_tokens, r.details -> 'caching' ->> 'reason' AS reason "
                       "FROM nightshift.run_costs c JOIN nightshift.runs r USING (run_pk) WHERE run_pk = %s",
                       (run_pk,))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def failed_examples(conn: psycopg.Connection, run_pk: int) -> list[tuple[str, str, str]]:
    """``(source key, error_type, error_message)`` of up to four failed items, by reason."""
    return conn.execute(
        "SELECT source_key, error_type, error_message FROM nightshift.items WHERE run_pk = %s AND status = 'failed' "
        "ORDER BY error_type, custom_id LIMIT 4", (run_pk,)).fetchall()
