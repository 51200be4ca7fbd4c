"""The run's deadline: cancel what is unfinished, then keep what was already paid for.

Cancelling stops processing, but every request the API answered before the cancel is billed.
So the wait does not fail at the deadline: it cancels, waits (bounded by
``polling.CANCEL_GRACE_SECONDS``) for the cancelled batches to reach ``ended``, and lets landing take
what succeeded and record the cost of everything billed. The requests the cancel stopped fail
``deadline_exceeded``, which closes the run ``failed`` and fails the DAG run at its verdict.
"""

from __future__ import annotations

import logging

import psycopg

from nightshift.backends.base import BatchBackend
from nightshift.batch.ledger import Run
from nightshift.ledger import batches, runs
from nightshift.ledger.status import CancelReason

log = logging.getLogger(__name__)


def cancel_at_deadline(conn: psycopg.Connection, backend: BatchBackend, run: Run, unfinished: list[str]) -> str:
    """Cancel the run's unfinished batches and say so on the run; returns the message."""
    for batch_id in unfinished:
        try:
            backend.cancel(batch_id)
        except Exception as exc:  # it ended meanwhile, or the API is away: its wait sees which
            log.warning("could not cancel batch %s: %r", batch_id, exc)
    mark_cancelled(conn, unfinished, CancelReason.DEADLINE)
    message = (f"run {run.run_pk} passed its deadline ({run.deadline_at.isoformat()}) with {len(unfinished)} "
               f"batch(es) unfinished; cancelled {', '.join(unfinished)}; what they had processed is landed")
    runs.set_message(conn, run.run_pk, message)
    conn.commit()
    log.warning("%s", message)
    return message


def mark_cancelled(conn: psycopg.Connection, batch_ids: list[str], reason: CancelReason) -> None:
    batches.mark_cancelled(conn, batch_ids, reason)
    conn.commit()
