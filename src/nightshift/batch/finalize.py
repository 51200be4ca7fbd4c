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

from nightshift.ledger import batches, cascades, queue, runs
from nightshift.ledger.items import close_open_items, failure_counts, item_counts
from nightshift.ledger.runs import Run
from nightshift.ledger.status import ItemStatus, RunStatus

log = logging.getLogger(__name__)

@dataclass
class RunSummary:
    run_pk: int
    workload: str
    requests: int
    succeeded: int
    failed: dict[str, int] = field(default_factory=dict)
    rounds: int = 0
    batches: int = 0
    status: RunStatus = RunStatus.SUCCEEDED
    costs: dict[str, Any] = field(default_factory=dict)
    #: the night's cost by model (items answered, attempts, tokens, cost); a cascade's on its last model alone
    cost_by_model: dict[str, Any] = field(default_factory=dict)
    last_model_alone_usd: float | None = None

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def as_dict(self) -> dict[str, Any]:
        costs = {k: float(v) if hasattr(v, "as_integer_ratio") else str(v) for k, v in self.costs.items()}
        return {**self.__dict__, "status": str(self.status), "costs": costs, "failed_total": self.failed_total}


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
    close_open_items(conn, run, past_deadline=past_deadline)
    if not run.shadow:
        queue.close_answered_duplicates(conn, run.claimer)
    counts = item_counts(conn, run)
    failed = failure_counts(conn, run)
    rounds, batch_count = batches.rounds_and_count(conn, run.run_pk)
    requests = sum(counts.values())
    from nightshift.batch.land import ACCOUNT_ITEM_ERRORS

    # an account error stops the night (the land step fails on it): the night did not finish
    unfinished = ({"deadline_exceeded", "not_landed", "not_submitted", "results_archived"} | ACCOUNT_ITEM_ERRORS) \
        & set(failed)
    status = RunStatus.EMPTY if requests == 0 else RunStatus.FAILED if unfinished else RunStatus.SUCCEEDED
    summary = RunSummary(run.run_pk, run.workload, requests, counts.get(ItemStatus.SUCCEEDED, 0), failed, rounds,
                         batch_count, status)
    cascade = cascades.cascade_models(conn, run.run_pk)
    summary.costs = record_run_costs(conn, run, runs.model(conn, run.run_pk), price_table(), cascade)
    by_model, alone, _ = cascades.cost_by_model(conn, run.run_pk)
    summary.cost_by_model = by_model or {}
    if cascade:
        summary.last_model_alone_usd = float(alone)
    runs.close(conn, run.run_pk, status=status, requests=requests, succeeded=summary.succeeded,
               failed=summary.failed_total, rounds=rounds)
    conn.commit()
    uncached = summary.costs["streaming_uncached_usd"]
    log.info("run %s cost $%.4f at the batch rate; the streaming path would have cost $%.4f (%.1f%% saved)",
             run.run_pk, summary.costs["cost_usd"], uncached,
             100 * (1 - summary.costs["cost_usd"] / uncached) if uncached else 0)
    if cascade:
        actual = float(summary.costs["cost_usd"])
        log.info("run %s by model: %s; on %s alone (a re-pricing) it would have cost $%.4f: $%.4f saved",
                 run.run_pk, "; ".join(f"{m} answered {e['items_answered']} in {e['attempts']} attempts, "
                                       f"${e['cost_usd']:.4f}" for m, e in summary.cost_by_model.items()),
                 cascade[-1], summary.last_model_alone_usd, summary.last_model_alone_usd - actual)
    log.info(
        "run %s (%s) closed as %s: %d requests, %d succeeded, %d failed %s, %d rounds, %d batches",
        run.run_pk, run.workload, status, requests, summary.succeeded, summary.failed_total, failed or "", rounds,
        batch_count,
    )
    return summary
