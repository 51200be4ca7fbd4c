"""Finalize: close the run so every request ends in exactly one terminal, queryable state.

Whatever is still open when the run's last step is done becomes ``failed`` with the reason
it stopped: retries exhausted (``expired_after_retries``, ``overloaded_error_after_retries``…),
a batch that never landed (``deadline_exceeded`` or ``not_landed``), or work never submitted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg

from nightshift.batch.ledger import Run, failure_counts, item_counts

log = logging.getLogger(__name__)

CLOSE_OPEN_ITEMS = """
WITH closed AS MATERIALIZED (
    UPDATE nightshift.items i
       SET status = 'failed', updated_at = now(),
           error_type = CASE
               WHEN i.status = 'retry' THEN coalesce(i.error_type, 'error') || '_after_retries'
               WHEN %(past_deadline)s THEN 'deadline_exceeded'
               WHEN i.status = 'submitted' THEN 'not_landed'
               ELSE 'not_submitted' END,
           error_message = CASE
               WHEN i.status = 'retry' THEN 'no retry round left: ' || coalesce(i.error_message, '')
               WHEN i.status = 'submitted' THEN 'its batch ended or was cancelled without being landed'
               WHEN %(past_deadline)s THEN 'the run''s deadline passed before this request was submitted'
               ELSE 'the run ended before this request was submitted' END
     WHERE i.run_pk = %(run_pk)s AND i.status IN ('pending', 'submitted', 'retry')
 RETURNING i.request_id, i.error_type, i.error_message
)
UPDATE app.llm_requests q
   SET status = 'failed', completed_at = now(), error = c.error_type || ': ' || c.error_message
  FROM closed c
 WHERE q.request_id = c.request_id AND NOT %(shadow)s
"""


@dataclass
class RunSummary:
    run_pk: int
    workload: str
    requests: int
    succeeded: int
    failed: dict[str, int] = field(default_factory=dict)
    rounds: int = 0
    batches: int = 0
    status: str = "succeeded"
    costs: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def as_dict(self) -> dict[str, Any]:
        costs = {k: float(v) if hasattr(v, "as_integer_ratio") else str(v) for k, v in self.costs.items()}
        return {**self.__dict__, "costs": costs, "failed_total": self.failed_total}


def finalize_run(conn: psycopg.Connection, run: Run, client: Any = None, workload: Any = None) -> RunSummary:
    """``client`` and ``workload`` (when given) let it settle suspected late duplicates first, so a
    proven one's bill is in the run's cost."""
    from nightshift.batch.costing import record_run_costs
    from nightshift.costs import price_table

    if client is not None and workload is not None:
        from nightshift.batch.ownership import settle_late_duplicates

        try:
            settle_late_duplicates(conn, client, workload)
        except Exception as exc:  # closing the run matters more; the next landing or finalize looks again
            conn.rollback()
            log.warning("could not settle suspected late duplicates: %r", exc)
    past_deadline = run.past_deadline()
    with conn.cursor() as cur:
        cur.execute(CLOSE_OPEN_ITEMS, {"run_pk": run.run_pk, "past_deadline": past_deadline, "shadow": run.shadow})
    counts = item_counts(conn, run)
    failed = failure_counts(conn, run)
    rounds, batch_count = conn.execute(
        "SELECT coalesce(max(round) + 1, 0), count(*) FROM nightshift.batches WHERE run_pk = %s", (run.run_pk,)
    ).fetchone()
    requests = sum(counts.values())
    from nightshift.batch.land import ACCOUNT_ITEM_ERRORS

    # an account error stops the night (the land step fails on it): the night did not finish
    unfinished = ({"deadline_exceeded", "not_landed", "not_submitted", "results_archived"} | ACCOUNT_ITEM_ERRORS) \
        & set(failed)
    status = "empty" if requests == 0 else "failed" if unfinished else "succeeded"
    summary = RunSummary(run.run_pk, run.workload, requests, counts.get("succeeded", 0), failed, rounds,
                         batch_count, status)
    model = conn.execute("SELECT model FROM nightshift.runs WHERE run_pk = %s", (run.run_pk,)).fetchone()[0]
    summary.costs = record_run_costs(conn, run, model, price_table())
    conn.execute(
        "UPDATE nightshift.runs SET status = %s, requests = %s, succeeded = %s, failed = %s, rounds = %s, "
        "finished_at = coalesce(finished_at, now()) WHERE run_pk = %s",
        (status, requests, summary.succeeded, summary.failed_total, rounds, run.run_pk),
    )
    conn.commit()
    uncached = summary.costs["streaming_uncached_usd"]
    log.info("run %s cost $%.4f at the batch rate; the streaming path would have cost $%.4f (%.1f%% saved)",
             run.run_pk, summary.costs["cost_usd"], uncached,
             100 * (1 - summary.costs["cost_usd"] / uncached) if uncached else 0)
    log.info(
        "run %s (%s) closed as %s: %d requests, %d succeeded, %d failed %s, %d rounds, %d batches",
        run.run_pk, run.workload, status, requests, summary.succeeded, summary.failed_total, failed or "", rounds,
        batch_count,
    )
    return summary
