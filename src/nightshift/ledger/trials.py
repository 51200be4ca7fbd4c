"""Model trials: ``nightshift.model_trials``, the trial table ``nightshift.trial_<workload>``, the sample.

A trial's run (mode ``trial``) holds one item per sampled key and no queue request; its landing writes
the trial table (the destination's twin, as the shadow table is), never the destination or the queue.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.ledger.migration import ensure_twin_table
from nightshift.ledger.status import TrialStatus
from nightshift.workloads.definition import Workload


@dataclass(frozen=True)
class Trial:
    trial_pk: int
    workload: str
    current_model: str
    candidate_model: str
    run_pk: int
    status: TrialStatus
    params: dict[str, Any]
    sample_size: int | None
    report: dict[str, Any] | None
    message: str | None
    created_at: datetime
    reported_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", TrialStatus(self.status))


_TRIAL_COLUMNS = sql.SQL("trial_pk, workload, current_model, candidate_model, run_pk, status, params, "
                         "sample_size, report, message, created_at, reported_at")


def trial_table(workload: Workload) -> str:
    return f"nightshift.trial_{workload.name}"


def ensure_trial_table(conn: psycopg.Connection, workload: Workload) -> None:
    ensure_twin_table(conn, workload, trial_table(workload))


def create(conn: psycopg.Connection, *, workload: str, current_model: str, candidate_model: str, run_pk: int,
           params: dict[str, Any]) -> Trial:
    """The trial of run ``run_pk``, recorded on first call; later calls (a retried task) return it."""
    row = conn.execute(sql.SQL(
        "INSERT INTO nightshift.model_trials (workload, current_model, candidate_model, run_pk, params) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_pk) DO UPDATE SET run_pk = EXCLUDED.run_pk "
        "RETURNING {}").format(_TRIAL_COLUMNS),
        (workload, current_model, candidate_model, run_pk, Jsonb(params))).fetchone()
    return Trial(*row)


def for_run(conn: psycopg.Connection, run_pk: int) -> Trial | None:
    row = conn.execute(sql.SQL("SELECT {} FROM nightshift.model_trials WHERE run_pk = %s").format(
        _TRIAL_COLUMNS), (run_pk,)).fetchone()
    return None if row is None else Trial(*row)


def get(conn: psycopg.Connection, trial_pk: int) -> Trial | None:
    row = conn.execute(sql.SQL("SELECT {} FROM nightshift.model_trials WHERE trial_pk = %s").format(
        _TRIAL_COLUMNS), (trial_pk,)).fetchone()
    return None if row is None else Trial(*row)


def latest_reported(conn: psycopg.Connection, workload: str) -> Trial | None:
    row = conn.execute(sql.SQL(
        "SELECT {} FROM nightshift.model_trials WHERE workload = %s AND status = 'reported' "
        "ORDER BY trial_pk DESC LIMIT 1").format(_TRIAL_COLUMNS), (workload,)).fetchone()
    return None if row is None else Trial(*row)


def record_sample(conn: psycopg.Connection, trial_pk: int, sample_size: int,
                  sampling: dict[str, Any]) -> None:
    conn.execute("UPDATE nightshift.model_trials SET sample_size = %s, "
                 "params = params || jsonb_build_object('sampling', %s::jsonb) WHERE trial_pk = %s",
                 (sample_size, Jsonb(sampling), trial_pk))


def record_report(conn: psycopg.Connection, trial_pk: int, *, keys_compared: int, keys_agreeing: int,
                  agreement: Decimal, low: Decimal, high: Decimal, report: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE nightshift.model_trials SET status = 'reported', keys_compared = %s, keys_agreeing = %s, "
        "agreement = %s, agreement_low = %s, agreement_high = %s, report = %s, message = NULL, "
        "reported_at = now() WHERE trial_pk = %s",
        (keys_compared, keys_agreeing, agreement, low, high, Jsonb(report), trial_pk))


def record_failure(conn: psycopg.Connection, trial_pk: int, message: str) -> None:
    conn.execute("UPDATE nightshift.model_trials SET status = 'failed', message = %s WHERE trial_pk = %s "
                 "AND status = 'running'", (message, trial_pk))


# -- The sample --------------------------------------------------------------------------------------------

def _eligible(workload: Workload, stratum_column: str | None,
              windowed: bool) -> tuple[sql.Composed, sql.Composable]:
    """``FROM … WHERE …`` of the destination rows (``d``) a trial may sample: the current model
    (``%(current_model)s``) wrote them, by the ledger's delivery record or the row's own model column,
    and their source row (``s``) exists, inside ``[%(start)s, %(end)s)`` on its timestamp column when
    ``windowed``; and the stratum expression (NULL without a stratum column)."""
    dest_schema, dest_table = workload.destination.table.split(".")
    source_schema, source_table = workload.source.table.split(".")
    own_model = workload.destination.delivery.model
    model = (sql.SQL("coalesce(dl.model, d.{})").format(sql.Identifier(own_model)) if own_model
             else sql.SQL("dl.model"))
    window = sql.SQL("")
    if windowed:
        window = sql.SQL(" AND s.{ts} >= %(start)s AND s.{ts} < %(end)s").format(
            ts=sql.Identifier(workload.source.timestamp_column))
    clause = sql.SQL(
        " FROM {dest} d JOIN {source} s ON s.{skey} = d.{dkey}"
        " LEFT JOIN nightshift.deliveries dl"
        "   ON dl.destination = %(destination)s AND dl.source_key = d.{dkey}::text"
        " WHERE {model} = %(current_model)s{window}").format(
        dest=sql.Identifier(dest_schema, dest_table), source=sql.Identifier(source_schema, source_table),
        skey=sql.Identifier(workload.source.key), dkey=sql.Identifier(workload.destination.key), model=model,
        window=window)
    stratum = (sql.SQL("d.{}::text").format(sql.Identifier(stratum_column)) if stratum_column
               else sql.SQL("NULL::text"))
    return clause, stratum


def _params(workload: Workload, current_model: str, start: datetime | None, end: datetime | None,
            **more: Any) -> dict[str, Any]:
    return {"destination": workload.destination.table, "current_model": current_model, "start": start,
            "end": end, **more}


def eligible_strata(conn: psycopg.Connection, workload: Workload, *, current_model: str,
                    stratum_column: str | None, start: datetime | None,
                    end: datetime | None) -> dict[str | None, int]:
    """Eligible rows per stratum (the destination's ``stratum_column`` value; one ``None`` stratum
    without)."""
    clause, stratum = _eligible(workload, stratum_column, start is not None)
    query = sql.SQL("SELECT {} AS stratum, count(*)").format(stratum) + clause + sql.SQL(" GROUP BY 1")
    return dict(conn.execute(query, _params(workload, current_model, start, end)).fetchall())


#: One item per sampled key: per stratum the first ``take`` eligible rows in an order the seed fixes
#: (an md5 of the seed and the key: the same seed draws the same sample from the same rows).
_SAMPLE_INTO_ITEMS = sql.SQL("""
INSERT INTO nightshift.items (run_pk, custom_id, source_key)
SELECT %(run_pk)s,
       'r' || %(run_pk)s || '-'
           || CASE WHEN r.k ~ '^[a-zA-Z0-9_-]{{1,40}}$' THEN 'k' || r.k ELSE 'h' || md5(r.k) END,
       r.k
  FROM (SELECT d.{dkey}::text AS k, {stratum} AS stratum,
               row_number() OVER (PARTITION BY {stratum} ORDER BY md5(%(seed)s || ':' || d.{dkey}::text)) AS n
        {eligible}) r
  JOIN unnest(%(strata)s::text[], %(takes)s::int[]) AS a (stratum, take)
    ON a.stratum IS NOT DISTINCT FROM r.stratum
 WHERE r.n <= a.take
ON CONFLICT (run_pk, custom_id) DO NOTHING
""")


def add_sample_items(conn: psycopg.Connection, workload: Workload, run_pk: int, *, current_model: str,
                     stratum_column: str | None, start: datetime | None, end: datetime | None, seed: int,
                     takes: dict[str | None, int]) -> int:
    """Add the sampled keys to the run as items (no queue request); returns how many were new."""
    clause, stratum = _eligible(workload, stratum_column, start is not None)
    statement = _SAMPLE_INTO_ITEMS.format(dkey=sql.Identifier(workload.destination.key), stratum=stratum,
                                          eligible=clause)
    return conn.execute(statement, _params(workload, current_model, start, end, run_pk=run_pk, seed=str(seed),
                                           strata=list(takes), takes=list(takes.values()))).rowcount


# -- What the report reads --------------------------------------------------------------------------------

def sampled_answers(conn: psycopg.Connection, workload: Workload, run_pk: int) -> Iterator[tuple]:
    """Per sampled key: ``(key, item status, error_type, then per destination column: the destination's
    value, the trial table's value)``."""
    columns = list(workload.destination.columns)
    dest_schema, dest_table = workload.destination.table.split(".")
    trial_schema, trial_name = trial_table(workload).split(".")
    key = sql.Identifier(workload.destination.key)
    query = sql.SQL(
        "SELECT i.source_key, i.status, i.error_type, {pairs} FROM nightshift.items i "
        "LEFT JOIN {dest} d ON d.{key}::text = i.source_key "
        "LEFT JOIN {trial} t ON t.{key}::text = i.source_key "
        "WHERE i.run_pk = %s ORDER BY d.{key}, i.source_key").format(
        pairs=sql.SQL(", ").join(sql.SQL("d.{c}, t.{c}").format(c=sql.Identifier(c)) for c in columns),
        dest=sql.Identifier(dest_schema, dest_table), trial=sql.Identifier(trial_schema, trial_name), key=key)
    with conn.cursor() as cur:
        yield from cur.execute(query, (run_pk,))


#: The recorded usage of the request that wrote each sampled destination row: the streaming path's
#: (stream_usage) or a batch or backfill item's (a backfill row has no request: its item is the
#: succeeded one of the key at the row's prompt version). One row per key that has one.
_CURRENT_USAGE = """
WITH wrote AS (
    SELECT i.source_key, dl.request_id, dl.prompt_version
      FROM nightshift.items i
      JOIN nightshift.deliveries dl ON dl.destination = %(destination)s AND dl.source_key = i.source_key
     WHERE i.run_pk = %(run_pk)s
)
SELECT w.source_key, 'streaming', u.model, u.input_tokens, u.output_tokens, u.cache_write_tokens, 0,
       u.cache_read_tokens, u.cost_usd, u.created_at
  FROM wrote w JOIN nightshift.stream_usage u ON u.request_id = w.request_id
UNION ALL (
SELECT DISTINCT ON (b.source_key) b.source_key, 'batch', b.model, b.input_tokens, b.output_tokens,
       b.cache_write_5m_tokens, b.cache_write_1h_tokens, b.cache_read_input_tokens, b.cost_usd, b.created_at
  FROM (
    SELECT w.source_key, coalesce(i.model, r.model) AS model, i.input_tokens, i.output_tokens,
           i.cache_write_5m_tokens, i.cache_write_1h_tokens, i.cache_read_input_tokens, i.cost_usd,
           r.created_at, i.updated_at
      FROM wrote w JOIN nightshift.items i ON i.request_id = w.request_id
      JOIN nightshift.runs r ON r.run_pk = i.run_pk
     WHERE r.workload = %(workload)s AND r.mode = 'queue'
       AND i.status = 'succeeded' AND i.cost_usd IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM nightshift.stream_usage u WHERE u.request_id = w.request_id)
    UNION ALL
    SELECT w.source_key, coalesce(i.model, r.model), i.input_tokens, i.output_tokens,
           i.cache_write_5m_tokens, i.cache_write_1h_tokens, i.cache_read_input_tokens, i.cost_usd,
           r.created_at, i.updated_at
      FROM wrote w JOIN nightshift.items i ON i.source_key = w.source_key AND i.request_id IS NULL
      JOIN nightshift.runs r ON r.run_pk = i.run_pk
     WHERE w.request_id IS NULL AND r.workload = %(workload)s AND r.mode = 'interval'
       AND r.prompt_version = w.prompt_version AND i.status = 'succeeded' AND i.cost_usd IS NOT NULL
  ) b
 ORDER BY b.source_key, b.updated_at DESC)
"""


def current_usage(conn: psycopg.Connection, workload: Workload, run_pk: int) -> list[tuple]:
    """Per sampled key whose writing request's cost is recorded: ``(key, path ('streaming' or 'batch'),
    model, input, output, cache write 5m, cache write 1h, cache read tokens, cost_usd, billed at)``; a
    streaming request's cache writes are all in the 5m column (stream_usage does not split them)."""
    return conn.execute(_CURRENT_USAGE, {"destination": workload.destination.table, "run_pk": run_pk,
                                         "workload": workload.name}).fetchall()


def candidate_cost(conn: psycopg.Connection, run_pk: int) -> tuple[Decimal, int, int]:
    """What the trial run cost, as the API's usage priced it: ``(cost, keys billed, attempts billed)``.
    An item holds its latest attempt; its earlier ones (asked for again, retried) are in
    ``nightshift.attempts``, counted here as the run's cost counts them."""
    return conn.execute(
        """
        SELECT coalesce(sum(cost_usd), 0), count(DISTINCT custom_id) FILTER (WHERE cost_usd IS NOT NULL),
               count(cost_usd)
          FROM (SELECT custom_id, cost_usd FROM nightshift.items WHERE run_pk = %(run_pk)s
                UNION ALL
                SELECT a.custom_id, a.cost_usd FROM nightshift.attempts a
                  JOIN nightshift.items i USING (run_pk, custom_id)
                 WHERE a.run_pk = %(run_pk)s AND a.round < i.round) spent
        """, {"run_pk": run_pk}).fetchone()


def recent_requests(conn: psycopg.Connection, workload: str, days: int) -> tuple[int, datetime | None]:
    """The workload's requests over the last ``days`` (queued requests, both paths, and backfill rows), and
    when the first of them came."""
    return conn.execute(
        """
        SELECT count(*), min(at) FROM (
            SELECT requested_at AS at FROM app.llm_requests
             WHERE workload = %(workload)s AND requested_at >= now() - make_interval(days => %(days)s)
            UNION ALL
            SELECT r.created_at FROM nightshift.items i JOIN nightshift.runs r USING (run_pk)
             WHERE r.workload = %(workload)s AND r.mode = 'interval'
               AND r.created_at >= now() - make_interval(days => %(days)s)
        ) recent
        """, {"workload": workload, "days": days}).fetchone()


def item_failures(conn: psycopg.Connection, run_pk: int) -> dict[str, int]:
    return dict(conn.execute("SELECT error_type, count(*) FROM nightshift.items WHERE run_pk = %s "
                             "AND status = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1", (run_pk,)).fetchall())


def keys_of(conn: psycopg.Connection, run_pk: int) -> Sequence[str]:
    return [k for (k,) in conn.execute("SELECT source_key FROM nightshift.items WHERE run_pk = %s ORDER BY 1",
                                       (run_pk,))]
