"""Submit: turn a round's items into as many Message Batches as the limits need.

Before each create call an intent row is committed (with the items assigned to it); right
after, the batch id. A retried or cleared task therefore re-attaches to what is recorded.
An intent without an id means a crash between the create call and recording it: the
orphan is adopted when the API lists a batch created in the intent's window with the same
request count and unknown to the ledger, otherwise the intent's items are submitted again.

The same search runs before a failed create is tried again, which is why the create call
has the SDK's own retries turned off: a create that timed out may still have created its
batch, and a blind retry would pay for the same requests twice.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anthropic
import psycopg
from anthropic.types.messages import MessageBatch
from psycopg import sql

from nightshift import queue
from nightshift.batch.body import BatchBody, encode_request
from nightshift.batch.ledger import BatchRow, Run, batches
from nightshift.workloads.definition import Workload
from nightshift.workloads.requests import InvalidInput, build_params
from nightshift.workloads.shape import RequestShape

log = logging.getLogger(__name__)

ORPHAN_WINDOW_BEFORE = timedelta(minutes=2)
ORPHAN_WINDOW_AFTER = timedelta(hours=1)
CREATE_ATTEMPTS = 4
#: Statuses with which the API refuses a call before doing any of it: no orphan to look for.
REFUSED_BEFORE_WORK = (429, 529)
#: Marks a batch created after a create call that may still go through late (see land).
UNANSWERED_CREATE = "created after an unanswered create call"
ROWS_PER_FETCH = 2_000


QUEUED = "SELECT coalesce(sum(request_count), 0) FROM nightshift.batches WHERE status IN ('intent', 'submitted')"


class NotAdmitted(RuntimeError):
    """The account's processing queue has no room for the next batch yet; wait and try again."""

    def __init__(self, needed: int, queued: int, cap: int) -> None:
        super().__init__(f"{needed} more requests would make {queued + needed} queued across all runs, "
                         f"over the cap of {cap}: waiting for batches to end")
        self.needed, self.queued, self.cap = needed, queued, cap


@dataclass
class Caps:
    max_requests: int = 100_000
    max_bytes: int = 256_000_000
    max_queued: int | None = None  # across all runs; None: no admission control

    @classmethod
    def for_workload(cls, workload: Workload, **overrides: Any) -> Caps:
        from nightshift.config import settings

        caps = cls(workload.batch.max_requests_per_batch, workload.batch.max_batch_bytes, settings().max_queued_requests)
        for name, value in overrides.items():
            if value is not None:
                setattr(caps, name, int(value))
        return caps


@dataclass
class SubmitResult:
    round: int
    batch_ids: list[str] = field(default_factory=list)
    submitted_requests: int = 0
    invalid_inputs: int = 0
    adopted: list[str] = field(default_factory=list)
    resubmitted_intents: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def submit_round(conn: psycopg.Connection, client: anthropic.Anthropic, workload: Workload, run: Run,
                 round_: int, caps: Caps) -> SubmitResult:
    from nightshift.batch.preflight import run_shape

    result = SubmitResult(round_)
    past_deadline = run.past_deadline()
    shape = run_shape(conn, client, workload, run)
    if round_ > 0:
        _promote_retries(conn, run, round_)
    elif not past_deadline:
        from nightshift.batch.costing import plan_caching
        from nightshift.costs import price_table

        plan_caching(conn, client, workload, run, price_table(), shape)
    for intent in batches(conn, run, round_, statuses=("intent",)):
        _recover_intent(conn, client, workload, run, intent, result)
    if past_deadline:  # e.g. it waited for room in the queue until then: what is in flight is all
        log.warning("run %s is past its deadline (%s): the round's unsubmitted requests stay unsubmitted",
                    run.run_pk, run.deadline_at.isoformat())
    else:
        _submit_unassigned(conn, client, workload, run, round_, caps, result, shape)
    result.batch_ids = [b.anthropic_batch_id for b in batches(conn, run, round_) if b.anthropic_batch_id]
    log.info(
        "round %d of run %s: %d batches (%s), %d requests submitted now, %d invalid inputs failed",
        round_, run.run_pk, len(result.batch_ids), ", ".join(result.batch_ids) or "none",
        result.submitted_requests, result.invalid_inputs,
    )
    return result


def _promote_retries(conn: psycopg.Connection, run: Run, round_: int) -> None:
    """Move the items the previous round marked for retry into this round, unassigned."""
    conn.execute(
        "UPDATE nightshift.items SET round = %s, status = 'pending', batch_pk = NULL, updated_at = now() "
        "WHERE run_pk = %s AND status = 'retry' AND round < %s",
        (round_, run.run_pk, round_),
    )
    conn.commit()


def _pending_rows(conn: psycopg.Connection, workload: Workload, run: Run, round_: int,
                  batch_pk: int | None, key: queue.KeyCast) -> psycopg.Cursor:
    """The round's items with their source rows, from a server-side cursor (held across commits)."""
    columns = [workload.source.key, *workload.source.columns]
    schema, table = workload.source.table.split(".")
    assigned = sql.SQL("i.batch_pk IS NULL") if batch_pk is None else sql.SQL("i.batch_pk = %s")
    source_key = sql.SQL("i.source_key")
    query = sql.SQL(
        "SELECT i.custom_id, i.source_key, i.request_id, {valid}, s.{key} IS NOT NULL, {columns} "
        "FROM nightshift.items i LEFT JOIN {table} s ON s.{key} = {cast} "
        "WHERE i.run_pk = %s AND i.round = %s AND i.status = 'pending' AND {assigned} ORDER BY i.custom_id"
    ).format(
        key=sql.Identifier(workload.source.key),
        columns=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
        table=sql.Identifier(schema, table),
        valid=key.valid(source_key),
        cast=key.cast(source_key),
        assigned=assigned,
    )
    cursor = conn.cursor(name=f"nightshift_submit_{run.run_pk}_{round_}", withhold=True)
    cursor.itersize = ROWS_PER_FETCH
    cursor.execute(query, (run.run_pk, round_) if batch_pk is None else (run.run_pk, round_, batch_pk))
    return cursor


def _encoded_requests(conn, workload, run, round_, batch_pk, invalid: list, shape: RequestShape | None = None):
    """Yield ``(custom_id, encoded request)``; bad source rows go to ``invalid`` instead."""
    columns = [workload.source.key, *workload.source.columns]
    key = queue.source_key_cast(conn, workload)
    with _pending_rows(conn, workload, run, round_, batch_pk, key) as cursor:
        for custom_id, source_key, request_id, valid_key, exists, *values in cursor:
            if not valid_key:
                invalid.append((custom_id, request_id, f"source key {source_key[:100]!r} of request {request_id} is "
                                f"not a valid {key.type_name} ({workload.source.table}.{workload.source.key})"))
                continue
            if not exists:
                invalid.append((custom_id, request_id, f"source row {workload.source.table}.{workload.source.key}="
                                f"{source_key} does not exist"))
                continue
            try:
                params = build_params(workload, dict(zip(columns, values, strict=True)), shape)
            except InvalidInput as exc:
                invalid.append((custom_id, request_id, str(exc)))
                continue
            yield custom_id, encode_request(custom_id, params)


def _submit_unassigned(conn, client, workload, run, round_, caps, result, shape: RequestShape) -> None:
    invalid: list[tuple[str, int | None, str]] = []
    samples = _Samples(round_ == 0 and not _any_batch(conn, run))
    seq = conn.execute("SELECT coalesce(max(seq) + 1, 0) FROM nightshift.batches WHERE run_pk = %s AND round = %s",
                       (run.run_pk, round_)).fetchone()[0]
    # A batch never holds more than the queue cap: a larger night goes through in turns.
    max_requests = min(caps.max_requests, caps.max_queued or caps.max_requests)
    body = BatchBody()
    try:
        for custom_id, encoded in _encoded_requests(conn, workload, run, round_, None, invalid, shape):
            samples.offer(encoded)
            if body.count and (body.count >= max_requests or body.size_with(encoded) > caps.max_bytes):
                samples.check(conn, client, workload, run, invalid, result)
                _create_batch(conn, client, run, round_, seq, body, invalid, result, caps)
                seq += 1
                body.close()
                body = BatchBody()
            if body.size_with(encoded) > caps.max_bytes:
                # with its request_id, so its queue row is closed with the reason, not left claimed
                request_id = conn.execute("SELECT request_id FROM nightshift.items WHERE run_pk = %s AND custom_id = %s",
                                          (run.run_pk, custom_id)).fetchone()[0]
                invalid.append((custom_id, request_id, f"request {custom_id} alone is {len(encoded)} bytes, "
                                f"over the batch body cap of {caps.max_bytes} bytes"))
                continue
            body.add(custom_id, encoded)
        if body.count:
            samples.check(conn, client, workload, run, invalid, result)
            _create_batch(conn, client, run, round_, seq, body, invalid, result, caps)
        else:
            _fail_invalid(conn, run, invalid, result)
            conn.commit()
    finally:
        body.close()


def _any_batch(conn: psycopg.Connection, run: Run) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM nightshift.batches WHERE run_pk = %s)",
                        (run.run_pk,)).fetchone()[0]


class _Samples:
    """The requests the preflight checks before the run's first create call: the first and the longest."""

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted
        self.first: bytes | None = None
        self.longest: bytes | None = None

    def offer(self, encoded: bytes) -> None:
        if not self.wanted:
            return
        if self.first is None:
            self.first = encoded
        if self.longest is None or len(encoded) > len(self.longest):
            self.longest = encoded

    def check(self, conn, client, workload: Workload, run: Run, invalid: list, result: SubmitResult) -> None:
        """Once, before the first create: a refusal fails the run's waiting requests, then raises."""
        if not self.wanted or self.first is None:
            return
        from nightshift.batch.preflight import PreflightRefused, fail_refused_run, preflight

        self.wanted = False
        distinct = [self.first] if self.longest in (None, self.first) else [self.first, self.longest]
        try:
            preflight(client, workload, [json.loads(encoded)["params"] for encoded in distinct])
        except PreflightRefused as refused:
            _fail_invalid(conn, run, invalid, result)  # bad rows keep their own reason
            count = fail_refused_run(conn, run, refused)
            log.error("%s; %d requests failed invalid_request, no batch created", refused, count)
            raise


def admit(conn: psycopg.Connection, count: int, cap: int | None) -> None:
    """Reserve room in the processing queue for ``count`` requests, or raise :class:`NotAdmitted`.

    The advisory lock makes check-and-reserve atomic across runs: the intent row inserted in the
    same transaction is what reserves the room, and it counts until its batch ends.
    """
    if cap is None:
        return
    if count > cap:
        raise ValueError(f"a batch of {count} requests can never fit under the queued-requests cap of {cap}: "
                         "lower max_requests_per_batch")
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('nightshift.admission'))")
    queued = conn.execute(QUEUED).fetchone()[0]
    if queued + count > cap:
        conn.rollback()
        raise NotAdmitted(count, queued, cap)


def _create_batch(conn, client, run, round_, seq, body: BatchBody, invalid, result, caps: Caps) -> None:
    admit(conn, body.count, caps.max_queued)
    intent_pk, intent_at = conn.execute(
        "INSERT INTO nightshift.batches (run_pk, round, seq, request_count, body_bytes) VALUES (%s, %s, %s, %s, %s) "
        "RETURNING batch_pk, intent_at", (run.run_pk, round_, seq, body.count, body.size),
    ).fetchone()
    conn.execute("UPDATE nightshift.items SET batch_pk = %s WHERE run_pk = %s AND custom_id = ANY(%s)",
                 (intent_pk, run.run_pk, body.custom_ids))
    _fail_invalid(conn, run, invalid, result)
    conn.commit()
    batch, recovery = _create_or_adopt(conn, client, intent_pk, intent_at, body)
    _record_created(conn, intent_pk, batch, recovery)
    if recovery and recovery.startswith("adopted"):
        result.adopted.append(batch.id)
    result.submitted_requests += body.count
    log.info("created batch %s: round %d #%d, %d requests, %.1f MB", batch.id, round_, seq, body.count, body.size / 1e6)


def _create_or_adopt(conn, client: anthropic.Anthropic, intent_pk: int, intent_at, body: BatchBody
                     ) -> tuple[MessageBatch, str | None]:
    """Create the intent's batch; after a failure that may have reached the API, adopt rather than repeat."""
    from nightshift.batch.errors import SpendLimitReached, is_spend_limit
    from nightshift.batch.polling import is_transient, next_interval
    from nightshift.batch.preflight import api_message

    once = client.with_options(max_retries=0)
    unanswered: list[str] = []
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            batch = _create_call(once, body)
            return batch, (f"{UNANSWERED_CREATE}: {'; '.join(unanswered)}"[:500] if unanswered else None)
        except Exception as exc:
            if is_spend_limit(exc):
                raise SpendLimitReached(f"the create call of intent #{intent_pk}", api_message(exc)) from exc
            if not is_transient(exc) or attempt == CREATE_ATTEMPTS:
                raise
            delay = _retry_after(exc) or next_interval(0.5, attempt - 1, 8.0)
            log.warning("create call for intent #%d failed (attempt %d of %d, again in %.1fs): %r",
                        intent_pk, attempt, CREATE_ATTEMPTS, delay, exc)
            time.sleep(delay)
            if getattr(exc, "status_code", None) in REFUSED_BEFORE_WORK:
                continue
            unanswered.append(repr(exc))
            orphan = _find_orphan(conn, client, intent_at, body.count)
            if orphan is not None:
                log.warning("the failed create call had created batch %s anyway: adopted it", orphan.id)
                return orphan, f"adopted {orphan.id} after a create call failed: {exc!r}"[:500]
    raise AssertionError("unreachable")


def cancel_late_duplicates(conn: psycopg.Connection, client: anthropic.Anthropic, run: Run, round_: int) -> list[str]:
    """Cancel batches that a create call which never answered made after all, too late to adopt.

    Runs before landing, long after submit: a batch matching such an intent (same window and
    request count) that the ledger does not know duplicates one it does. It is cancelled and
    recorded, so it is never landed and never left running up the bill.
    """
    suspects = conn.execute(
        "SELECT batch_pk, seq, intent_at, request_count FROM nightshift.batches "
        "WHERE run_pk = %s AND round = %s AND recovery LIKE %s", (run.run_pk, round_, UNANSWERED_CREATE + "%"),
    ).fetchall()
    cancelled = []
    for batch_pk, _seq, intent_at, request_count in suspects:
        duplicate = _find_orphan(conn, client, intent_at, request_count)
        if duplicate is None:
            continue
        try:
            client.messages.batches.cancel(duplicate.id)
        except anthropic.BadRequestError:  # it has ended already; it is still never landed
            pass
        next_seq = conn.execute("SELECT max(seq) + 1 FROM nightshift.batches WHERE run_pk = %s AND round = %s",
                                (run.run_pk, round_)).fetchone()[0]
        conn.execute(
            "INSERT INTO nightshift.batches (run_pk, round, seq, anthropic_batch_id, status, request_count, "
            "body_bytes, intent_at, recovery) VALUES (%s, %s, %s, %s, 'abandoned', %s, 0, %s, %s)",
            (run.run_pk, round_, next_seq, duplicate.id, request_count, intent_at,
             f"late duplicate of batch #{batch_pk} (its create call went through after timing out): cancelled"))
        conn.commit()
        cancelled.append(duplicate.id)
        log.warning("batch %s duplicates batch #%d: a create call that timed out went through late; cancelled it",
                    duplicate.id, batch_pk)
    return cancelled


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    try:
        return float(response.headers["retry-after"]) if response is not None else None
    except (KeyError, ValueError):
        return None


def _find_orphan(conn, client: anthropic.Anthropic, intent_at, request_count: int
                 ) -> MessageBatch | None:
    """A listed batch created in the intent's window, with its request count, that no ledger row knows."""
    known = {row[0] for row in conn.execute(
        "SELECT anthropic_batch_id FROM nightshift.batches WHERE anthropic_batch_id IS NOT NULL")}
    conn.commit()
    window_start, window_end = intent_at - ORPHAN_WINDOW_BEFORE, intent_at + ORPHAN_WINDOW_AFTER
    for candidate in client.messages.batches.list(limit=100):
        if candidate.created_at < window_start:
            return None
        counts = candidate.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        if candidate.id not in known and candidate.created_at <= window_end and total == request_count:
            return candidate
    return None


def _create_call(client: anthropic.Anthropic, body: BatchBody) -> MessageBatch:
    return client.post(
        "/v1/messages/batches", cast_to=MessageBatch, content=body,
        options={"headers": {"Content-Type": "application/json", "Content-Length": str(body.size)}},
    )


def _record_created(conn: psycopg.Connection, batch_pk: int, batch: MessageBatch, recovery: str | None = None) -> None:
    conn.execute(
        "UPDATE nightshift.batches SET anthropic_batch_id = %s, status = 'submitted', submitted_at = now(), "
        "expires_at = %s, processing_status = %s, recovery = %s WHERE batch_pk = %s",
        (batch.id, batch.expires_at, batch.processing_status, recovery, batch_pk),
    )
    conn.execute("UPDATE nightshift.items SET status = 'submitted', updated_at = now() "
                 "WHERE batch_pk = %s AND status = 'pending'", (batch_pk,))
    conn.commit()


def _fail_invalid(conn: psycopg.Connection, run: Run, invalid: list, result: SubmitResult) -> None:
    """Bad source rows fail at once, with the reason, and never reach the API."""
    for custom_id, request_id, message in invalid:
        conn.execute(
            "UPDATE nightshift.items SET status = 'failed', error_type = 'invalid_input', error_message = %s, "
            "batch_pk = NULL, updated_at = now() WHERE run_pk = %s AND custom_id = %s",
            (message, run.run_pk, custom_id),
        )
        if request_id is not None:
            queue.mark_failed(conn, request_id, f"invalid_input: {message}")
        log.warning("%s: %s", custom_id, message)
    result.invalid_inputs += len(invalid)
    invalid.clear()


def _recover_intent(conn, client, workload: Workload, run: Run, intent: BatchRow, result: SubmitResult) -> None:
    orphan = _find_orphan(conn, client, intent.intent_at, intent.request_count)
    if orphan is not None:
        _record_created(conn, intent.batch_pk, orphan, recovery=f"adopted orphan {orphan.id}")
        result.adopted.append(orphan.id)
        log.warning(
            "recovered intent #%d (round %d, %d requests): adopted batch %s, created %s, which the ledger "
            "did not know: the previous attempt crashed after the create call", intent.batch_pk,
            intent.round, intent.request_count, orphan.id, orphan.created_at.isoformat(),
        )
        return
    invalid: list = []
    body = BatchBody()
    try:
        for custom_id, encoded in _encoded_requests(conn, workload, run, intent.round, intent.batch_pk, invalid):
            body.add(custom_id, encoded)
        _fail_invalid(conn, run, invalid, result)
        conn.commit()
        if not body.count:
            conn.execute("UPDATE nightshift.batches SET status = 'abandoned', recovery = 'no requests left' "
                         "WHERE batch_pk = %s", (intent.batch_pk,))
            conn.commit()
            return
        conn.execute("UPDATE nightshift.batches SET request_count = %s, body_bytes = %s WHERE batch_pk = %s",
                     (body.count, body.size, intent.batch_pk))
        conn.commit()
        batch, adopted = _create_or_adopt(conn, client, intent.batch_pk, intent.intent_at, body)
        _record_created(conn, intent.batch_pk, batch, adopted or "resubmitted: no orphan found")
    finally:
        body.close()
    result.resubmitted_intents.append(intent.batch_pk)
    result.submitted_requests += body.count
    log.warning(
        "recovered intent #%d (round %d): no listed batch matched it (created %s ±, %d requests), so its "
        "requests were submitted again as %s", intent.batch_pk, intent.round, intent.intent_at.isoformat(),
        intent.request_count, batch.id,
    )
