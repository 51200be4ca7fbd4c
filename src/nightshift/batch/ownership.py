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
import enum
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from nightshift.backends.base import BatchBackend, OutcomeKind

log = logging.getLogger(__name__)

ORPHAN_WINDOW_BEFORE = timedelta(minutes=2)
ORPHAN_WINDOW_AFTER = timedelta(hours=1)
#: Tries (on fresh connections) to journal a create answer before giving up and raising.
JOURNAL_ATTEMPTS = 5


class Verdict(enum.StrEnum):
    UNPROVEN = "unproven"
    OURS = "ours"
    NOT_OURS = "not_ours"


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
            target.execute("INSERT INTO nightshift.create_answers (batch_pk, backend_batch_id) VALUES (%s, %s)",
                           (batch_pk, batch_id))
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


def answered(conn: psycopg.Connection, batch_pk: int) -> str | None:
    """The batch id the API answered for this intent, if a create call's answer was journalled."""
    row = conn.execute("SELECT backend_batch_id FROM nightshift.create_answers WHERE batch_pk = %s "
                       "ORDER BY answer_pk DESC LIMIT 1", (batch_pk,)).fetchone()
    return row[0] if row else None


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
    known = {row[0] for row in conn.execute(
        "SELECT backend_batch_id FROM nightshift.batches WHERE backend_batch_id IS NOT NULL "
        "UNION SELECT backend_batch_id FROM nightshift.create_answers WHERE batch_pk <> %s "
        "UNION SELECT backend_batch_id FROM nightshift.suspect_batches WHERE verdict = 'not_ours' AND batch_pk = %s",
        (batch_pk, batch_pk))}
    conn.commit()
    return [c for c in listed_now if c.id not in known]


def intent_custom_ids(conn: psycopg.Connection, batch_pk: int) -> set[str]:
    return {row[0] for row in conn.execute("SELECT custom_id FROM nightshift.items WHERE batch_pk = %s", (batch_pk,))}


def run_custom_ids(conn: psycopg.Connection, run_pk: int) -> set[str]:
    return {row[0] for row in conn.execute("SELECT custom_id FROM nightshift.items WHERE run_pk = %s", (run_pk,))}


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
        conn.execute("INSERT INTO nightshift.suspect_batches (backend_batch_id, batch_pk) VALUES (%s, %s) "
                     "ON CONFLICT DO NOTHING", (batch_id, batch_pk))
    conn.commit()


def settle(conn: psycopg.Connection, batch_id: str, batch_pk: int, verdict: Verdict) -> None:
    conn.execute("INSERT INTO nightshift.suspect_batches (backend_batch_id, batch_pk, verdict, settled_at) "
                 "VALUES (%s, %s, %s, now()) ON CONFLICT (backend_batch_id, batch_pk) DO UPDATE "
                 "SET verdict = EXCLUDED.verdict, settled_at = EXCLUDED.settled_at", (batch_id, batch_pk, verdict))
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




#: Unproven late-duplicate suspects of a workload, oldest first: those whose intent has its batch.
LATE_SUSPECTS = """
SELECT s.backend_batch_id, s.batch_pk, b.run_pk, b.round, r.created_at
  FROM nightshift.suspect_batches s
  JOIN nightshift.batches b ON b.batch_pk = s.batch_pk
  JOIN nightshift.runs r ON r.run_pk = b.run_pk
 WHERE s.verdict = 'unproven' AND b.backend_batch_id IS NOT NULL AND r.workload = %s
 ORDER BY s.found_at
 LIMIT 50
"""


def settle_late_duplicates(conn: psycopg.Connection, backend: BatchBackend, workload: Any) -> list[str]:
    """Decide the workload's suspected late duplicates that have ended since they were found.

    One proven ours is a second, paid copy of a batch already landed: it is recorded
    ``abandoned`` (never landed) with what it was billed, so the night reports what it cost.
    Another team's is left alone. One still running stays unproven and is looked at again by
    the next landing or finalize of the workload.
    """
    duplicates = []
    for batch_id, batch_pk, run_pk, round_, run_created in conn.execute(LATE_SUSPECTS, (workload.name,)).fetchall():
        verdict = prove(backend, batch_id, run_custom_ids(conn, run_pk), exact=False)
        if verdict is Verdict.UNPROVEN:
            log.warning("batch %s may duplicate batch #%d but is still running: it cannot be proven ours yet, so it "
                        "is neither cancelled nor landed; the next landing or finalize looks again", batch_id, batch_pk)
            continue
        if verdict is Verdict.OURS:
            billed = billed_usd(backend, batch_id, workload, run_created.date())
            next_seq = conn.execute("SELECT max(seq) + 1 FROM nightshift.batches WHERE run_pk = %s AND round = %s",
                                    (run_pk, round_)).fetchone()[0]
            conn.execute(
                "INSERT INTO nightshift.batches (run_pk, round, seq, backend_batch_id, status, request_count, "
                "body_bytes, intent_at, recovery, billed_usd, backend) SELECT run_pk, round, %s, %s, 'abandoned', "
                "request_count, 0, intent_at, %s, %s, backend FROM nightshift.batches WHERE batch_pk = %s",
                (next_seq, batch_id, f"late duplicate of batch #{batch_pk}, proven by its results' custom_ids (its "
                 f"create call went through after timing out): not landed; billed ${billed:.6f}", billed, batch_pk))
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
