"""The dashboard's read model over the ledger: plain SQL, one function per question.

Every function takes an open psycopg 3 connection and only reads. Numbers come from the
ledger itself: request counts from ``nightshift.items`` (the one place every request's
terminal state lives), batches from ``nightshift.batches``, money from the
``nightshift.run_costs`` view. Money is returned as :class:`~decimal.Decimal`; the app turns it
into JSON numbers.

Callers check :func:`ledger_present` first: on a database where ``include/sql`` has not been
applied there is nothing to read, and the dashboard says so instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

#: The cost figures of a night, as the ``nightshift.run_costs`` view names them.
COST_COLUMNS = ("cost_usd", "streaming_uncached_usd", "streaming_cached_usd", "savings_usd", "savings_pct",
                "cache_hit_ratio")
#: The columns of the failures CSV, in order.
CSV_COLUMNS = ("run_pk", "workload", "run_created_at", "round", "custom_id", "source_key", "request_id",
               "error_type", "error_message", "failed_at")


def ledger_present(conn: psycopg.Connection) -> bool:
    """Whether the ledger (``include/sql/002`` and ``003``) exists in this database."""
    row = conn.execute(
        "SELECT to_regclass('nightshift.runs') IS NOT NULL AND to_regclass('nightshift.batches') IS NOT NULL "
        "AND to_regclass('nightshift.items') IS NOT NULL AND to_regclass('nightshift.run_costs') IS NOT NULL"
    ).fetchone()
    return bool(row[0])


def workloads(conn: psycopg.Connection) -> list[str]:
    """Every workload that has at least one run in the ledger."""
    return [w for (w,) in conn.execute("SELECT DISTINCT workload FROM nightshift.runs ORDER BY 1")]


def failure_reasons(conn: psycopg.Connection) -> list[str]:
    """Every reason a request has failed with (the failures view's filter choices)."""
    return [r for (r,) in conn.execute(
        "SELECT DISTINCT error_type FROM nightshift.items WHERE status = 'failed' AND error_type IS NOT NULL "
        "ORDER BY 1")]


# Nights ------------------------------------------------------------------------------------

_NIGHT_SELECT = """
SELECT p.run_pk, p.workload, p.dag_id, p.airflow_run_id, p.mode, p.status, p.model, p.message,
       p.last_model_alone_usd,
       p.created_at, p.finished_at, p.deadline_at, p.data_interval_start, p.data_interval_end,
       coalesce(i.requests, 0)  AS requests,
       coalesce(i.succeeded, 0) AS succeeded,
       coalesce(i.failed, 0)    AS failed,
       coalesce(i.open, 0)      AS open,
       coalesce(f.by_reason, '{}'::jsonb) AS failed_by_reason,
       coalesce(b.rounds, 0)    AS rounds,
       greatest(coalesce(b.rounds, 0) - 1, 0) AS retry_rounds,
       coalesce(b.batches, 0)   AS batches,
       b.last_poll_at, b.next_poll_at,
       c.cost_usd, c.streaming_uncached_usd, c.streaming_cached_usd, c.savings_usd, c.savings_pct,
       c.cache_hit_ratio
  FROM page p
  JOIN nightshift.run_costs c ON c.run_pk = p.run_pk
  LEFT JOIN LATERAL (
        SELECT count(*) AS requests,
               count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed')) AS open
          FROM nightshift.items WHERE run_pk = p.run_pk) i ON true
  LEFT JOIN LATERAL (
        SELECT jsonb_object_agg(reason, n) AS by_reason
          FROM (SELECT coalesce(error_type, 'unknown') AS reason, count(*) AS n
                  FROM nightshift.items WHERE run_pk = p.run_pk AND status = 'failed'
                 GROUP BY 1) x) f ON true
  LEFT JOIN LATERAL (
        SELECT coalesce(max(round) + 1, 0) AS rounds, count(*) AS batches,
               max(last_polled_at) AS last_poll_at,
               min(next_poll_at) FILTER (WHERE status = 'submitted') AS next_poll_at
          FROM nightshift.batches WHERE run_pk = p.run_pk) b ON true
 ORDER BY p.run_pk DESC
"""


def _nights(conn: psycopg.Connection, page_query: sql.Composable, params: dict[str, Any]) -> list[dict]:
    query = sql.SQL("WITH page AS ({page}) ").format(page=page_query) + sql.SQL(_NIGHT_SELECT)
    rows = conn.cursor(row_factory=dict_row).execute(query, params).fetchall()
    for row in rows:
        row["cost"] = {name: row.pop(name) for name in COST_COLUMNS}
    return rows


def nights(conn: psycopg.Connection, *, workload: str | None = None, limit: int = 50,
           offset: int = 0) -> tuple[int, list[dict]]:
    """The nights (ledger runs), newest first: ``(total, one page of rows)``.

    Each row: the run's identity and status, ``requests`` / ``succeeded`` / ``failed`` /
    ``open`` counted from its items, ``failed_by_reason``, ``rounds`` submitted (round 0
    included) and ``retry_rounds``, ``batches``, ``last_poll_at`` / ``next_poll_at`` (when the
    wait last asked the API about its batches and when it asks next; None when no wait is
    polling), and ``cost`` (the run_costs figures; None until finalize priced the night).
    """
    where = sql.SQL("WHERE workload = %(workload)s") if workload else sql.SQL("")
    total = conn.execute(sql.SQL("SELECT count(*) FROM nightshift.runs {where}").format(where=where),
                         {"workload": workload}).fetchone()[0]
    page = sql.SQL("SELECT * FROM nightshift.runs {where} ORDER BY run_pk DESC "
                   "LIMIT %(limit)s OFFSET %(offset)s").format(where=where)
    return total, _nights(conn, page, {"workload": workload, "limit": limit, "offset": offset})


def latest_nights(conn: psycopg.Connection) -> list[dict]:
    """The latest night of every workload (what ``nightshift report`` prints), by workload; a model trial's
    run is not a night."""
    page = sql.SQL("SELECT DISTINCT ON (workload) * FROM nightshift.runs WHERE mode <> 'trial' "
                   "ORDER BY workload, run_pk DESC")
    return sorted(_nights(conn, page, {}), key=lambda r: r["workload"])


def night(conn: psycopg.Connection, run_pk: int) -> dict | None:
    """One night's row (as in :func:`nights`), or None."""
    rows = _nights(conn, sql.SQL("SELECT * FROM nightshift.runs WHERE run_pk = %(run_pk)s"), {"run_pk": run_pk})
    return rows[0] if rows else None


def run_pk_for_airflow_run(conn: psycopg.Connection, dag_id: str, airflow_run_id: str) -> int | None:
    """The ledger run an Airflow DAG run recorded (the ledger keys runs by both ids)."""
    row = conn.execute("SELECT run_pk FROM nightshift.runs WHERE dag_id = %s AND airflow_run_id = %s",
                       (dag_id, airflow_run_id)).fetchone()
    return row[0] if row else None


def batches(conn: psycopg.Connection, run_pk: int) -> list[dict]:
    """A night's batches in submission order, with the ledger's timings and the API's counts."""
    return conn.cursor(row_factory=dict_row).execute(
        """
        SELECT batch_pk, round, seq, backend_batch_id, status, processing_status, request_count,
               request_counts, body_bytes, intent_at, submitted_at, expires_at, ended_at, landed_at, recovery
          FROM nightshift.batches WHERE run_pk = %s ORDER BY round, seq
        """, (run_pk,)).fetchall()


def rounds(conn: psycopg.Connection, run_pk: int) -> list[dict]:
    """Per round: its batches and requests submitted, and the items whose last round it was.

    ``submitted`` counts the requests of the round's batches (abandoned intents excluded);
    ``succeeded`` / ``failed`` / ``open`` count items by the round they ended in (a retried
    item moves to the later round), so the rounds' outcomes add up to the night's.
    """
    return conn.cursor(row_factory=dict_row).execute(
        """
        WITH b AS (
            SELECT round, count(*) AS batches,
                   coalesce(sum(request_count) FILTER (WHERE status <> 'abandoned'), 0) AS submitted,
                   min(submitted_at) AS first_submitted_at, max(ended_at) AS last_ended_at,
                   max(landed_at) AS last_landed_at
              FROM nightshift.batches WHERE run_pk = %(run_pk)s GROUP BY round),
        i AS (
            SELECT round, count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed')) AS open
              FROM nightshift.items WHERE run_pk = %(run_pk)s GROUP BY round)
        SELECT coalesce(b.round, i.round) AS round, coalesce(b.batches, 0) AS batches,
               coalesce(b.submitted, 0) AS submitted, coalesce(i.succeeded, 0) AS succeeded,
               coalesce(i.failed, 0) AS failed, coalesce(i.open, 0) AS open,
               b.first_submitted_at, b.last_ended_at, b.last_landed_at
          FROM b FULL JOIN i ON i.round = b.round
         ORDER BY 1
        """, {"run_pk": run_pk}).fetchall()


# The 30-night series -------------------------------------------------------------------------

def series_window(days: int, tz: str, today: date | None = None) -> tuple[date, date]:
    """The ``days`` nights ending today (in ``tz``), as inclusive dates."""
    end = today or datetime.now(ZoneInfo(tz)).date()
    return end - timedelta(days=days - 1), end


def cost_series(conn: psycopg.Connection, *, days: int = 30, tz: str = "UTC",
                today: date | None = None) -> dict[str, Any]:
    """Cost and savings per workload and night over the last ``days`` nights.

    A night is a calendar date in ``tz`` (the runs created that day); only priced runs count
    (finalize prices a night). Per point: ``runs``, ``cost_usd`` (what the batch path paid),
    ``streaming_uncached_usd`` / ``streaming_cached_usd`` (the same tokens on the streaming
    path), ``savings_usd`` and ``savings_pct`` (against streaming without cache, as the
    run_costs view defines them). Nights without a priced run have no point. A model trial's run
    is left out: it replaced no streaming request, so it saved nothing (its page shows its cost).
    """
    start, end = series_window(days, tz, today)
    rows = conn.cursor(row_factory=dict_row).execute(
        """
        SELECT workload, (created_at AT TIME ZONE %(tz)s)::date AS night, count(*) AS runs,
               sum(cost_usd) AS cost_usd, sum(streaming_uncached_usd) AS streaming_uncached_usd,
               sum(streaming_cached_usd) AS streaming_cached_usd, sum(savings_usd) AS savings_usd,
               round(100 * sum(savings_usd) / nullif(sum(streaming_uncached_usd), 0), 2) AS savings_pct
          FROM nightshift.run_costs
         WHERE cost_usd IS NOT NULL
           AND run_pk NOT IN (SELECT run_pk FROM nightshift.runs WHERE mode = 'trial')
           AND created_at >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
           AND created_at <  (%(end)s::timestamp AT TIME ZONE %(tz)s)
         GROUP BY 1, 2
         ORDER BY 1, 2
        """, {"tz": tz, "start": start, "end": end + timedelta(days=1)}).fetchall()
    by_workload: dict[str, list[dict]] = {}
    for row in rows:
        by_workload.setdefault(row.pop("workload"), []).append(row)
    totals = {name: _totals(points) for name, points in by_workload.items()}
    return {"days": days, "timezone": tz, "start": start, "end": end,
            "nights": [start + timedelta(days=n) for n in range(days)],
            "workloads": by_workload, "totals": totals, "total": _totals(rows)}


def _totals(points: list[dict]) -> dict[str, Any]:
    keys = ("cost_usd", "streaming_uncached_usd", "streaming_cached_usd", "savings_usd")
    total: dict[str, Any] = {k: sum((p[k] for p in points if p[k] is not None), start=0) for k in keys}
    total["runs"] = sum(p["runs"] for p in points)
    uncached = total["streaming_uncached_usd"]
    total["savings_pct"] = round(100 * total["savings_usd"] / uncached, 2) if uncached else None
    return total


# Failed items --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FailureFilter:
    """Which failed items to list: every field optional; dates are inclusive nights in ``tz``."""

    workload: str | None = None
    reason: str | None = None
    run_pk: int | None = None
    since: date | None = None
    until: date | None = None
    tz: str = "UTC"

    def where(self) -> tuple[sql.Composable, dict[str, Any]]:
        clauses = [sql.SQL("i.status = 'failed'")]
        params: dict[str, Any] = {"tz": self.tz}
        if self.workload:
            clauses.append(sql.SQL("r.workload = %(workload)s"))
            params["workload"] = self.workload
        if self.reason:
            clauses.append(sql.SQL("i.error_type = %(reason)s"))
            params["reason"] = self.reason
        if self.run_pk is not None:
            clauses.append(sql.SQL("i.run_pk = %(run_pk)s"))
            params["run_pk"] = self.run_pk
        if self.since:
            clauses.append(sql.SQL("r.created_at >= (%(since)s::timestamp AT TIME ZONE %(tz)s)"))
            params["since"] = self.since
        if self.until:
            clauses.append(sql.SQL("r.created_at < (%(until)s::timestamp AT TIME ZONE %(tz)s)"))
            params["until"] = self.until + timedelta(days=1)
        return sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses), params


_FAILURES_FROM = sql.SQL("FROM nightshift.items i JOIN nightshift.runs r ON r.run_pk = i.run_pk ")
_FAILURES_ORDER = sql.SQL(" ORDER BY i.run_pk DESC, i.request_id NULLS LAST, i.custom_id")


def failures(conn: psycopg.Connection, flt: FailureFilter, *, limit: int = 50,
             offset: int = 0) -> tuple[int, list[dict]]:
    """Failed items matching ``flt``, newest run first: ``(total, one page of rows)``."""
    where, params = flt.where()
    total = conn.execute(sql.SQL("SELECT count(*) ") + _FAILURES_FROM + where, params).fetchone()[0]
    query = (sql.SQL("SELECT i.run_pk, r.workload, r.dag_id, r.airflow_run_id, r.created_at AS run_created_at, "
                     "i.round, i.custom_id, i.source_key, i.request_id, i.error_type, i.error_message, "
                     "i.updated_at AS failed_at ")
             + _FAILURES_FROM + where + _FAILURES_ORDER + sql.SQL(" LIMIT %(limit)s OFFSET %(offset)s"))
    rows = conn.cursor(row_factory=dict_row).execute(query, {**params, "limit": limit, "offset": offset}).fetchall()
    return total, rows


def _csv_text(column: str) -> sql.Composed:
    """A text cell that a spreadsheet opens as text, never as a formula (CSV injection).

    Excel, LibreOffice and Sheets run a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or
    a carriage return as a formula; prefixed with ``'`` it shows as the text it is. Source keys
    and error messages are not ours to trust: a source row or a reply can say anything.
    """
    return sql.SQL("CASE WHEN {c} ~ '^[-=+@\\t\\r]' THEN '''' || {c} ELSE {c} END").format(
        c=sql.Identifier(*column.split(".")))


def failures_csv(conn: psycopg.Connection, flt: FailureFilter, *, chunk_bytes: int = 64 * 1024) -> Iterator[bytes]:
    """The failed items matching ``flt`` as CSV (header first), streamed in chunks of ~``chunk_bytes``.

    PostgreSQL writes the CSV (``COPY ... TO STDOUT``) and psycopg hands it over row by row:
    neither the rows nor the document are ever held in memory whole. Timestamps are UTC,
    ISO 8601. A text cell that a spreadsheet would run as a formula starts with ``'``.
    """
    where, params = flt.where()
    select = (sql.SQL("SELECT i.run_pk, {workload}, to_char(r.created_at AT TIME ZONE 'UTC', {iso}), i.round, "
                      "{custom_id}, {source_key}, i.request_id, {error_type}, {error_message}, "
                      "to_char(i.updated_at AT TIME ZONE 'UTC', {iso}) ").format(
                          iso=sql.Literal('YYYY-MM-DD"T"HH24:MI:SS"Z"'), workload=_csv_text("r.workload"),
                          custom_id=_csv_text("i.custom_id"), source_key=_csv_text("i.source_key"),
                          error_type=_csv_text("i.error_type"), error_message=_csv_text("i.error_message"))
              + _FAILURES_FROM + where + _FAILURES_ORDER)
    header = sql.SQL(", ").join(sql.Identifier(c) for c in CSV_COLUMNS)
    # The SELECT's output names are the header: alias each column to its CSV name.
    copy = sql.SQL("COPY (SELECT * FROM ({select}) AS f ({header})) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
        select=select, header=header)
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(copy, params) as rows:
        for block in rows:
            buffer += block
            if len(buffer) >= chunk_bytes:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


def empty_csv() -> bytes:
    """The failures CSV of a database without a ledger: the header alone."""
    return (",".join(CSV_COLUMNS) + "\n").encode()


# Models: a night by model, model trials ----------------------------------------------------------

def models_of_night(conn: psycopg.Connection, run_pk: int) -> list[dict]:
    """The night's items and cost by model: ``model``, ``items``, ``succeeded``, ``failed``, ``cost_usd``.

    An item counts under the model it was last sent to (``items.model``, the run's model where the
    item has none); the cost is what the API billed each model, from every landed attempt where the
    ledger keeps them (``nightshift.attempts``: an escalated attempt's cost stays with its model),
    else from the items. Warm-up calls are not in it (the night's total has them).
    """
    attempts = conn.execute("SELECT to_regclass('nightshift.attempts') IS NOT NULL").fetchone()[0]
    item_model = sql.SQL("coalesce(i.model, r.model)") if attempts else sql.SQL("r.model")
    cost = (sql.SQL("SELECT a.model, sum(a.cost_usd) AS cost_usd FROM nightshift.attempts a "
                    "WHERE a.run_pk = %(run_pk)s GROUP BY 1") if attempts else
            sql.SQL("SELECT r.model, sum(i.cost_usd) AS cost_usd FROM nightshift.items i "
                    "JOIN nightshift.runs r USING (run_pk) WHERE i.run_pk = %(run_pk)s GROUP BY 1"))
    query = sql.SQL("""
        WITH counted AS (
            SELECT {item_model} AS model, count(*) AS items,
                   count(*) FILTER (WHERE i.status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE i.status = 'failed') AS failed
              FROM nightshift.items i JOIN nightshift.runs r USING (run_pk)
             WHERE i.run_pk = %(run_pk)s GROUP BY 1),
        costed AS ({cost})
        SELECT coalesce(c.model, k.model) AS model, coalesce(c.items, 0) AS items,
               coalesce(c.succeeded, 0) AS succeeded, coalesce(c.failed, 0) AS failed, k.cost_usd
          FROM counted c FULL JOIN costed k ON k.model = c.model
         ORDER BY k.cost_usd DESC NULLS LAST, 1
        """).format(item_model=item_model, cost=cost)
    return conn.cursor(row_factory=dict_row).execute(query, {"run_pk": run_pk}).fetchall()


def trials_present(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('nightshift.model_trials') IS NOT NULL").fetchone()[0]


def trials(conn: psycopg.Connection, workload: str | None = None) -> list[dict]:
    """Model trials, newest first (of one workload, or all)."""
    where = sql.SQL("WHERE t.workload = %(workload)s") if workload else sql.SQL("")
    query = sql.SQL("""
        SELECT t.trial_pk, t.workload, t.current_model, t.candidate_model, t.run_pk, t.status, t.sample_size,
               t.keys_compared, t.keys_agreeing, t.agreement, t.agreement_low, t.agreement_high, t.message,
               t.created_at, t.reported_at
          FROM nightshift.model_trials t {where} ORDER BY t.trial_pk DESC""").format(where=where)
    return conn.cursor(row_factory=dict_row).execute(query, {"workload": workload}).fetchall()


def trial(conn: psycopg.Connection, trial_pk: int) -> dict | None:
    """One trial with its stored ``report``, or None."""
    return conn.cursor(row_factory=dict_row).execute("""
        SELECT t.trial_pk, t.workload, t.current_model, t.candidate_model, t.run_pk, t.status, t.sample_size,
               t.keys_compared, t.keys_agreeing, t.agreement, t.agreement_low, t.agreement_high, t.message,
               t.created_at, t.reported_at, t.report
          FROM nightshift.model_trials t WHERE t.trial_pk = %s""", (trial_pk,)).fetchone()


def switches_on_trial(conn: psycopg.Connection, trial_pk: int) -> list[dict]:
    """The model switches that rest on this trial."""
    if not conn.execute("SELECT to_regclass('nightshift.workload_models') IS NOT NULL").fetchone()[0]:
        return []
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT switch_pk, model, from_model, changed_at, changed_by FROM nightshift.workload_models "
        "WHERE trial_pk = %s ORDER BY switch_pk", (trial_pk,)).fetchall()
