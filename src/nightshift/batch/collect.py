"""Collect: claim the workload's pending requests for one run, entirely inside Postgres.

One statement claims the requests (``FOR UPDATE SKIP LOCKED``, so an overlapping run or a
streaming worker can never take the same request) and records a ledger item per request
with a deterministic ``custom_id``. No row travels to the worker, so a million pending
requests cost no worker memory. Running it again for the same run claims nothing twice.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from nightshift.batch.ledger import Run
from nightshift.workloads.definition import Workload

log = logging.getLogger(__name__)

CLAIM_INTO_LEDGER = """
WITH claimable AS (
    SELECT request_id FROM app.llm_requests
     WHERE workload = %(workload)s AND status = 'pending'
     ORDER BY request_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE app.llm_requests AS r
       SET status = 'claimed', claimed_by = %(claimer)s, claimed_at = now(), attempts = r.attempts + 1
      FROM claimable AS c
     WHERE r.request_id = c.request_id
 RETURNING r.request_id, r.source_key
)
INSERT INTO nightshift.items (run_pk, custom_id, source_key, request_id)
SELECT %(run_pk)s, 'r' || %(run_pk)s || '-q' || request_id, source_key, request_id FROM claimed
ON CONFLICT (run_pk, custom_id) DO NOTHING
"""


SHADOW_INTO_LEDGER = """
INSERT INTO nightshift.items (run_pk, custom_id, source_key, request_id)
SELECT %(run_pk)s, 'r' || %(run_pk)s || '-q' || request_id, source_key, request_id
  FROM app.llm_requests
 WHERE workload = %(workload)s AND requested_at >= %(start)s AND requested_at < %(end)s
 ORDER BY request_id
 LIMIT %(limit)s
ON CONFLICT (run_pk, custom_id) DO NOTHING
"""


# Interval mode: the source rows whose timestamp falls in the run's data interval and whose
# destination row is missing or was produced by another prompt version. Keys that are not
# custom_id-safe are hashed; the ledger item keeps the key itself.
INTERVAL_ROWS = sql.SQL("""
  FROM {source} s LEFT JOIN {destination} d ON d.{dest_key} = s.{key}
 WHERE s.{ts} >= %(start)s AND s.{ts} < %(end)s
   AND (%(reprocess)s OR d.{dest_key} IS NULL OR d.prompt_version IS DISTINCT FROM %(version)s)
 ORDER BY s.{key}
 LIMIT %(limit)s
""")
INTERVAL_INTO_LEDGER = sql.SQL("""
INSERT INTO nightshift.items (run_pk, custom_id, source_key)
SELECT %(run_pk)s,
       'r' || %(run_pk)s || '-' || CASE WHEN s.{key}::text ~ '^[a-zA-Z0-9_-]{{1,40}}$' THEN 'k' || s.{key}::text
                                      ELSE 'h' || md5(s.{key}::text) END,
       s.{key}::text
""")
INTERVAL_INTO_LEDGER_END = sql.SQL("ON CONFLICT (run_pk, custom_id) DO NOTHING")


def interval_statement(workload: Workload, select: sql.SQL = INTERVAL_INTO_LEDGER,
                       end: sql.SQL = INTERVAL_INTO_LEDGER_END) -> sql.Composed:
    """The interval's rows still to do, between ``select`` and ``end`` (collect's INSERT, or the estimate's read)."""
    if not workload.source.timestamp_column:
        raise ValueError(f"workload {workload.name!r} has no source.timestamp_column: it cannot run in interval mode")
    schema, table = workload.source.table.split(".")
    dest_schema, dest_table = workload.destination.table.split(".")
    names = dict(
        key=sql.Identifier(workload.source.key), source=sql.Identifier(schema, table),
        destination=sql.Identifier(dest_schema, dest_table), dest_key=sql.Identifier(workload.destination.key),
        ts=sql.Identifier(workload.source.timestamp_column),
        columns=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c))
                                   for c in [workload.source.key, *workload.source.columns]))
    return select.format(**names) + INTERVAL_ROWS.format(**names) + end.format(**names)


def run_interval(conn: psycopg.Connection, run: Run) -> tuple:
    return conn.execute("SELECT data_interval_start, data_interval_end FROM nightshift.runs WHERE run_pk = %s",
                        (run.run_pk,)).fetchone()


def collect(conn: psycopg.Connection, workload: Workload, run: Run, *, limit: int | None = None,
            reprocess: bool = False) -> int:
    """Claim pending requests into the run; return how many items the run now has.

    A shadow run claims nothing: it copies the requests queued in its window (the streaming
    path still owns and answers them), so both paths answer the same requests. An interval
    run (backfill) takes source rows by timestamp instead of the queue, skipping rows already
    at the current prompt version unless ``reprocess``.
    """
    with conn.cursor() as cur:
        if run.mode == "interval":
            start, end = run_interval(conn, run)
            if start is None or end is None:
                raise ValueError(f"run {run.run_pk} has no data interval: interval mode needs one")
            cur.execute(interval_statement(workload), {"run_pk": run.run_pk, "start": start, "end": end,
                                                       "reprocess": reprocess, "version": workload.prompt_version,
                                                       "limit": limit})
        elif run.shadow:
            start, end = conn.execute(
                "SELECT coalesce(data_interval_start, created_at - interval '1 day'), "
                "coalesce(data_interval_end, created_at) FROM nightshift.runs WHERE run_pk = %s",
                (run.run_pk,)).fetchone()
            cur.execute(SHADOW_INTO_LEDGER, {"workload": workload.name, "run_pk": run.run_pk, "limit": limit,
                                             "start": start, "end": end})
        else:
            cur.execute(CLAIM_INTO_LEDGER, {"workload": workload.name, "claimer": run.claimer,
                                            "run_pk": run.run_pk, "limit": limit})
        newly_claimed = cur.rowcount
        if newly_claimed:
            # A night can add a large share of the table at once; plan the next steps on real counts.
            cur.execute("ANALYZE nightshift.items")
        total = cur.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s", (run.run_pk,)).fetchone()[0]
        cur.execute(
            "UPDATE nightshift.runs SET requests = %s, status = CASE WHEN %s = 0 THEN 'empty' ELSE 'running' END "
            "WHERE run_pk = %s AND status IN ('collecting', 'running', 'empty')",
            (total, total, run.run_pk),
        )
    conn.commit()
    if newly_claimed < total:
        log.info("run %s already held %d claimed requests; claimed %d more", run.run_pk, total - newly_claimed, newly_claimed)
    log.info("collected %d %s requests into run %s", total, workload.name, run.run_pk)
    return total
