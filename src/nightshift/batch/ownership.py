"""Which batches are ours: proof before a batch is adopted, recorded as a duplicate, or cancelled.

Batches are visible to the whole workspace, so a batch that ``list`` shows with the right
request count in the right window may be another team's. Two proofs are accepted:

* the create call's own answer, journalled (``nightshift.create_answers``) the moment it
  arrives, before anything else can fail;
* for a batch no answer named (the create call crashed or timed out and went through anyway),
  its results once it has ended: their ``custom_id``\\ s must be exactly the intent's.

A batch still in progress shows no custom_id, so it cannot be proven: it is recorded as a
suspect (``nightshift.suspect_batches``) and decided when it ends. Nothing unproven is adopted
or cancelled, and a foreign batch is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from nightshift.backends.base import BatchBackend, OutcomeKind
from nightshift.ledger import ownership as proofs
from nightshift.ledger.ownership import answered, intent_custom_ids, run_custom_ids  # noqa: F401
from nightshift.ledger.status import Verdict

log = logging.getLogger(__name__)

ORPHAN_WINDOW_BEFORE = timedelta(minutes=2)
ORPHAN_WINDOW_AFTER = timedelta(hours=1)
#: Tries (on fresh connections) to journal a create answer before giving up and raising.
JOURNAL_ATTEMPTS = 5


#: How long a submit waits for suspects before it looks again (one may have been recorded by
#: another of our intents meanwhile, and drop out), unless they end first.
PROOF_RECHECK_SECONDS = 60.0


class AwaitingProof(RuntimeError):
    """A batch that may be one of ours is still running: it cannot be proven ours or not until
    it ends, and creating again meanwhile could pay twice. Wait for it to end (or at most
    ``PROOF_RECHECK_SECONDS``), then submit again."""

    def __init__(self, batch_ids: list[str]) -> None:
        super().__init__(f"batch(es) {', '.join(batch_ids)} match an intent whose create call went unanswered but "
                         "are still running: they cannot be proven ours or another team's until they end; "
                         "waiting for them before creating anything for that intent")
        self.batch_ids = batch_ids


@dataclass(frozen=True)
class Candidate:
    id: str
    created_at: datetime
    ended: bool


def journal_answer(conn: psycopg.Connection, batch_pk: int, batch_id: str) -> None:
    """Make a create call's answer durable at once; on a broken connection, on a fresh one."""
    for attempt in range(1, JOURNAL_ATTEMPTS + 1):
        try:
            target = conn if not conn.closed and not conn.broken else psycopg.connect(
                conn.info.dsn, password=conn.info.password)
            proofs.record_create_answer(target, batch_pk, batch_id)
            target.commit()
            if target is not conn:
                target.close()
            return
        except psycopg.Error as exc:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            if attempt == JOURNAL_ATTEMPTS:
                log.error("batch %s was created for intent #%d but its id could not be written down (%r): a retry "
                          "will look for it at the API and adopt it only on proof", batch_id, batch_pk, exc)
                raise
            time.sleep(min(0.2 * 2 ** attempt, 5.0))


def candidates(conn: psycopg.Connection, backend: BatchBackend, batch_pk: int, intent_at: datetime, request_count: int
               ) -> list[Candidate]:
    """Listed batches created in the intent's window, with its request count, that the ledger does
    not know and has not already proven not this intent's. Newest first, as the API lists them."""
    window_start, window_end = intent_at - ORPHAN_WINDOW_BEFORE, intent_at + ORPHAN_WINDOW_AFTER
    listed_now = []
    for listed in backend.recent_batches():
        if listed.created_at < window_start:
            break
        if listed.created_at <= window_end and listed.request_counts.total == request_count:
            listed_now.append(Candidate(listed.id, listed.created_at, listed.ended))
    # Read after listing: a batch another intent created just before the list has had its answer
    # journalled (or recorded) by now, so it is known, not a candidate.
    known = proofs.known_batch_ids(conn, batch_pk)
    conn.commit()
    return [c for c in listed_now if c.id not in known]


def prove(backend: BatchBackend, batch_id: str, expected: set[str], *, exact: bool = True) -> Verdict:
    """Ours when the ended batch's results carry the intent's custom_ids, no more, no fewer; with
    ``exact=False``, when every one of them is one of ``expected`` (a run's, whose items may have
    moved on to a later round since the intent).

    Reads the results only as far as the first custom_id that is not expected.
    """
    if not backend.retrieve(batch_id).ended:
        return Verdict.UNPROVEN
    seen: set[str] = set()
    with backend.results(batch_id) as outcomes:
        for outcome in outcomes:
            if outcome.custom_id not in expected:
                return Verdict.NOT_OURS
            seen.add(outcome.custom_id)
    return Verdict.OURS if seen and (seen == expected or not exact) else Verdict.NOT_OURS


def record_suspects(conn: psycopg.Connection, batch_pk: int, batch_ids: list[str]) -> None:
    for batch_id in batch_ids:
        proofs.record_suspect(conn, batch_pk, batch_id)
    conn.commit()


def settle(conn: psycopg.Connection, batch_id: str, batch_pk: int, verdict: Verdict) -> None:
    proofs.settle_suspect(conn, batch_id, batch_pk, verdict)
    conn.commit()
    if verdict is Verdict.NOT_OURS:
        log.info("batch %s is not ours (its results' custom_ids are not intent #%d's): left alone", batch_id, batch_pk)


def identify(conn: psycopg.Connection, backend: BatchBackend, batch_pk: int, found: list[Candidate]
             ) -> tuple[str | None, list[str]]:
    """Among the candidates for an intent: the one proven ours, and those still unproven (each
    candidate's verdict, unproven included, is recorded in ``nightshift.suspect_batches``)."""
    expected = intent_custom_ids(conn, batch_pk)
    unproven = []
    for candidate in found:
        verdict = prove(backend, candidate.id, expected) if candidate.ended else Verdict.UNPROVEN
        settle(conn, candidate.id, batch_pk, verdict)
        if verdict is Verdict.OURS:
            return candidate.id, []
        if verdict is Verdict.UNPROVEN:
            unproven.append(candidate.id)
    return None, unproven




def settle_late_duplicates(conn: psycopg.Connection, backend: BatchBackend, workload: Any) -> list[str]:
    """Decide the workload's suspected late duplicates that have ended since they were found.

    One proven ours is a second, paid copy of a batch already landed: it is recorded
    ``abandoned`` (never landed) with what it was billed, so the night reports what it cost.
    Another team's is left alone. One still running stays unproven and is looked at again by
    the next landing or finalize of the workload.
    """
    duplicates = []
    for batch_id, batch_pk, run_pk, round_, run_created in proofs.late_suspects(conn, workload.name):
        verdict = prove(backend, batch_id, run_custom_ids(conn, run_pk), exact=False)
        if verdict is Verdict.UNPROVEN:
            log.warning("batch %s may duplicate batch #%d but is still running: it cannot be proven ours yet, so it "
                        "is neither cancelled nor landed; the next landing or finalize looks again", batch_id, batch_pk)
            continue
        if verdict is Verdict.OURS:
            billed = billed_usd(backend, batch_id, workload, run_created.date())
            proofs.record_late_duplicate(
                conn, batch_pk, batch_id, run_pk=run_pk, round_=round_, billed=billed,
                recovery=f"late duplicate of batch #{batch_pk}, proven by its results' custom_ids (its create call "
                         f"went through after timing out): not landed; billed ${billed:.6f}")
            duplicates.append(batch_id)
            log.warning("batch %s is a late duplicate of batch #%d (proven by its results' custom_ids): recorded, not "
                        "landed; it was billed $%.6f", batch_id, batch_pk, billed)
        settle(conn, batch_id, batch_pk, verdict)
    return duplicates


def billed_usd(backend: BatchBackend, batch_id: str, workload: Any, billed_on) -> Any:
    """What an ended batch's results were billed at the batch rate (errored, canceled, expired: nothing)."""
    from decimal import Decimal

    from nightshift.batch.costing import usage_of
    from nightshift.costs import price_table

    prices = price_table()
    total = Decimal(0)
    with backend.results(batch_id) as outcomes:
        for outcome in outcomes:
            if outcome.kind is OutcomeKind.SUCCEEDED:
                message = outcome.message
                total += prices.cost(usage_of(message.get("usage") or {}, workload),
                                     message.get("model") or workload.model, batch=True, on=billed_on)
    return total
