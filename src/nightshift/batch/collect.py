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

from nightshift.contract import check_contract
from nightshift.ledger import deliveries, items, queue, runs
from nightshift.ledger.runs import Run
from nightshift.ledger.status import RunMode
from nightshift.workloads.definition import Workload

log = logging.getLogger(__name__)

# Interval mode: the source rows whose timestamp falls in the run's data interval and whose
# destination row is missing or was produced by another prompt version: as the ledger's delivery record
# says, or the row's own prompt_version column for a row landed before the ledger kept them. A row
# that failed invalid_input at this prompt version is left out while it is unchanged (its digest),
# reprocess or not. Parameters: start, end, reprocess, version, limit, workload and ``destination``
# (the destination table's name).
INTERVAL_ROWS = sql.SQL("""
  FROM {source} s LEFT JOIN {destination} d ON d.{dest_key} = s.{key}{provenance}
 WHERE s.{ts} >= %(start)s AND s.{ts} < %(end)s
   AND (%(reprocess)s OR d.{dest_key} IS NULL OR {produced_by} IS DISTINCT FROM %(version)s)
   AND NOT {failed_unchanged}
 ORDER BY s.{key}
 LIMIT %(limit)s
""")

def interval_statement(workload: Workload, select: sql.SQL = sql.SQL(""),
                       end: sql.SQL = sql.SQL("")) -> sql.Composed:
    """The interval's rows still to do, between ``select`` and ``end`` (the estimate's read; collect's
    INSERT adds its own, see :func:`nightshift.ledger.items.add_interval_rows`)."""
    if not workload.source.timestamp_column:
        raise ValueError(f"workload {workload.name!r} has no source.timestamp_column: it cannot run in interval mode")
    schema, table = workload.source.table.split(".")
    dest_schema, dest_table = workload.destination.table.split(".")
    names = dict(
        key=sql.Identifier(workload.source.key), source=sql.Identifier(schema, table),
        destination=sql.Identifier(dest_schema, dest_table), dest_key=sql.Identifier(workload.destination.key),
        ts=sql.Identifier(workload.source.timestamp_column),
        provenance=deliveries.produced_by(sql.SQL("d.{}").format(sql.Identifier(workload.destination.key))),
        produced_by=_produced_by(workload),
        failed_unchanged=items.failed_invalid_unchanged(
            sql.SQL("s.{}::text").format(sql.Identifier(workload.source.key)), source_digest(workload)),
        columns=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c))
                                   for c in [workload.source.key, *workload.source.columns]))
    return select.format(**names) + INTERVAL_ROWS.format(**names) + end.format(**names)


def source_digest(workload: Workload) -> sql.Composed:
    """A source row's digest (aliased ``s``): its key and source columns; it changes when any of them does."""
    columns = [workload.source.key, *workload.source.columns]
    return sql.SQL("md5(row({})::text)").format(
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns))


def _produced_by(workload: Workload) -> sql.Composable:
    column = workload.destination.delivery.prompt_version
    if column is None:
        return sql.SQL("dl.prompt_version")
    return sql.SQL("coalesce(dl.prompt_version, d.{})").format(sql.Identifier(column))


def collect(conn: psycopg.Connection, workload: Workload, run: Run, *, limit: int | None = None,
            reprocess: bool = False) -> int:
    """Claim pending requests into the run; return how many items the run now has.

    A shadow run claims nothing: it copies the requests queued in its window (the streaming
    path still owns and answers them), so both paths answer the same requests. An interval
    run (backfill) takes source rows by timestamp instead of the queue, skipping rows already
    at the current prompt version unless ``reprocess``. A trial run (``workload`` on the candidate
    model) takes its sample of destination keys (:func:`nightshift.migration.trial.collect_sample`).

    The tables are checked against the workload first (:func:`nightshift.contract.check_contract`):
    a mismatch raises :class:`~nightshift.contract.ContractMismatch` before anything is claimed.
    """
    check_contract(conn, workload)
    if run.mode == RunMode.INTERVAL:
        start, end = runs.data_interval(conn, run.run_pk)
        if start is None or end is None:
            raise ValueError(f"run {run.run_pk} has no data interval: interval mode needs one")
        newly_claimed = items.add_interval_rows(
            conn, sql.Identifier(workload.source.key), source_digest(workload), interval_statement(workload),
            {"run_pk": run.run_pk, "start": start, "end": end, "reprocess": reprocess,
             "workload": workload.name, "version": workload.prompt_version, "limit": limit,
             "destination": workload.destination.table})
    elif run.trial:
        from nightshift.migration.trial import collect_sample

        newly_claimed = collect_sample(conn, workload, run)
    elif run.shadow:
        start, end = runs.shadow_window(conn, run.run_pk)
        newly_claimed = queue.copy_window_into_run(conn, workload=workload.name, run_pk=run.run_pk, limit=limit,
                                                   start=start, end=end)
    else:
        newly_claimed = queue.claim_into_run(conn, workload=workload.name, claimer=run.claimer, run_pk=run.run_pk,
                                             limit=limit)
    if newly_claimed:
        items.analyze(conn)
    total = items.count(conn, run.run_pk)
    runs.record_collected(conn, run.run_pk, total)
    conn.commit()
    if newly_claimed < total:
        log.info("run %s already held %d claimed requests; claimed %d more", run.run_pk, total - newly_claimed, newly_claimed)
    log.info("collected %d %s requests into run %s", total, workload.name, run.run_pk)
    return total
