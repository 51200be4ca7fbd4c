"""Submit: turn a round's items into as many Message Batches as the limits need.

Before each create call an intent row is committed (with the items assigned to it); the
call's answer is journalled the moment it arrives, then recorded on the intent. A retried or
cleared task therefore re-attaches to what is recorded, and a retry never creates while a
batch of its own may exist unrecorded:

* an intent whose answer was journalled adopts that batch (the answer is the proof);
* an intent with no answer (a crash, a timeout that may have gone through) looks at the listed
  batches of its window and request count that the ledger does not know; one is adopted only
  once proven ours by its results' custom_ids (:mod:`nightshift.batch.ownership`). While such a
  batch still runs it cannot be proven, so the round waits for it (:class:`AwaitingProof`)
  instead of creating again; another team's batch is never adopted.

The backend makes the create call once, its client's retries off, for the same reason: a create that timed
out may still have created its batch, and a blind retry would pay for the same requests twice.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from nightshift import queue
from nightshift.backends.base import BatchBackend, BatchState, ErrorKind
from nightshift.batch.body import BatchBody, encode_request
from nightshift.batch.ledger import BatchRow, Run, batches
from nightshift.batch.ownership import AwaitingProof, answered, candidates, identify, journal_answer, record_suspects
from nightshift.ledger import batches as ledger_batches
from nightshift.ledger import items
from nightshift.ledger.status import BatchStatus
from nightshift.workloads.definition import Workload
from nightshift.workloads.requests import InvalidInput, build_params
from nightshift.workloads.shape import RequestShape

log = logging.getLogger(__name__)

CREATE_ATTEMPTS = 4
#: Marks a batch created after a create call that may still go through late (see land).
UNANSWERED_CREATE = "created after an unanswered create call"
ROWS_PER_FETCH = 2_000


class BatchIdReissued(RuntimeError):
    """The API answered a batch id the ledger already holds for another batch. The real API never
    reissues ids; an emulator whose state was reset does. The answer is journalled, so a retry
    adopts it rather than creating again, once the ledger's stale row is dealt with."""

    def __init__(self, batch_id: str, batch_pk: int, holder_pk: int, holder_run: int) -> None:
        super().__init__(f"batch {batch_id}, just created for intent #{batch_pk}, is already recorded for batch "
                         f"#{holder_pk} of run {holder_run}: the API (an emulator whose state was reset?) reissued "
                         "an id. Nothing is created again: the answer is kept and a retry adopts it")


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
    def for_workload(cls, workload: Workload, max_queued: int | None = None, **overrides: Any) -> Caps:
        """The workload's batch limits; ``max_queued`` is the deployment's (``[nightshift] max_queued_requests``)."""
        caps = cls(workload.batch.max_requests_per_batch, workload.batch.max_batch_bytes, max_queued)
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
    #: batches that may be ours, still running: the intents they match wait for them to end
    awaiting_proof: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def submit_round(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, run: Run,
                 round_: int, caps: Caps) -> SubmitResult:
    """Submit the round; when it fails, why is kept on the run for the requests it leaves unsubmitted."""
    from nightshift.batch.causes import recorded
    from nightshift.ledger.runs import Step

    with recorded(conn, run, Step.SUBMIT, backend, passing=(AwaitingProof, NotAdmitted)):
        return _submit_round(conn, backend, workload, run, round_, caps)


def _submit_round(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, run: Run,
                  round_: int, caps: Caps) -> SubmitResult:
    from nightshift.batch.preflight import run_shapes

    result = SubmitResult(round_)
    past_deadline = run.past_deadline()
    shapes = run_shapes(conn, backend, workload, run)
    shape = shapes[workload.model]
    if round_ > 0:
        _promote_retries(conn, workload, run, round_)
    elif not past_deadline:
        from nightshift.batch.costing import plan_caching
        from nightshift.costs import price_table

        plan_caching(conn, backend, workload, run, price_table(), shape)
    for intent in batches(conn, run, round_, statuses=(BatchStatus.INTENT,)):
        _recover_intent(conn, backend, workload, run, intent, result, past_deadline, shapes)
    if past_deadline:  # e.g. it waited for room in the queue until then: what is in flight is all
        log.warning("run %s is past its deadline (%s): the round's unsubmitted requests stay unsubmitted",
                    run.run_pk, run.deadline_at.isoformat())
    else:
        _submit_unassigned(conn, backend, workload, run, round_, caps, result, shapes)
    result.batch_ids = [b.backend_batch_id for b in batches(conn, run, round_) if b.backend_batch_id]
    log.info(
        "round %d of run %s: %d batches (%s), %d requests submitted now, %d invalid inputs failed",
        round_, run.run_pk, len(result.batch_ids), ", ".join(result.batch_ids) or "none",
        result.submitted_requests, result.invalid_inputs,
    )
    if result.awaiting_proof:
        raise AwaitingProof(result.awaiting_proof)
    return result


def _promote_retries(conn: psycopg.Connection, workload: Workload, run: Run, round_: int) -> None:
    """Move the items the previous round marked for retry into this round, unassigned: an escalated
    one to the next model of the workload's cascade, an ordinary retry on its own model."""
    models = workload.models
    items.promote_retries(conn, run.run_pk, round_, dict(zip(models, models[1:])))
    conn.commit()


def _pending_rows(conn: psycopg.Connection, workload: Workload, run: Run, round_: int,
                  batch_pk: int | None, key: queue.KeyCast) -> psycopg.Cursor:
    """The round's items with their source rows, from a server-side cursor (held across commits)."""
    return items.pending_with_sources(conn, workload, run.run_pk, round_, batch_pk, key,
                                      name=f"nightshift_submit_{run.run_pk}_{round_}", itersize=ROWS_PER_FETCH)


def _encoded_requests(conn, workload, run, round_, batch_pk, invalid: list,
                      shapes: dict[str, RequestShape] | None = None):
    """Yield ``(custom_id, encoded request)``, each for the model its item goes to (``shapes``: the
    run's shape by model; without, the model table's); bad source rows go to ``invalid`` instead."""
    columns = [workload.source.key, *workload.source.columns]
    key = queue.source_key_cast(conn, workload)
    shapes = shapes or {}
    with _pending_rows(conn, workload, run, round_, batch_pk, key) as cursor:
        for custom_id, source_key, request_id, model, valid_key, exists, *values in cursor:
            if not valid_key:
                invalid.append((custom_id, request_id, f"source key {source_key[:100]!r} of request {request_id} is "
                                f"not a valid {key.type_name} ({workload.source.table}.{workload.source.key})"))
                continue
            if not exists:
                invalid.append((custom_id, request_id, f"source row {workload.source.table}.{workload.source.key}="
                                f"{source_key} does not exist"))
                continue
            try:
                model = model or workload.model
                params = build_params(workload.on_model(model), dict(zip(columns, values, strict=True)),
                                      shapes.get(model))
            except InvalidInput as exc:
                invalid.append((custom_id, request_id, str(exc)))
                continue
            yield custom_id, encode_request(custom_id, params)


def _submit_unassigned(conn, backend: BatchBackend, workload, run, round_, caps, result,
                       shapes: dict[str, RequestShape]) -> None:
    invalid: list[tuple[str, int | None, str]] = []
    samples = _Samples(round_ == 0 and not _any_batch(conn, run), shapes)
    seq = ledger_batches.next_seq(conn, run.run_pk, round_)
    # A batch never holds more than the queue cap: a larger night goes through in turns.
    max_requests = min(caps.max_requests, caps.max_queued or caps.max_requests)
    body = BatchBody()
    try:
        for custom_id, encoded in _encoded_requests(conn, workload, run, round_, None, invalid, shapes):
            samples.offer(encoded)
            if body.count and (body.count >= max_requests or body.size_with(encoded) > caps.max_bytes):
                samples.check(conn, backend, workload, run, invalid, result)
                _create_batch(conn, backend, run, round_, seq, body, invalid, result, caps)
                seq += 1
                body.close()
                body = BatchBody()
            if body.size_with(encoded) > caps.max_bytes:
                # with its request_id, so its queue row is closed with the reason, not left claimed
                request_id = items.request_id(conn, run.run_pk, custom_id)
                invalid.append((custom_id, request_id, f"request {custom_id} alone is {len(encoded)} bytes, "
                                f"over the batch body cap of {caps.max_bytes} bytes"))
                continue
            body.add(custom_id, encoded)
        if body.count:
            samples.check(conn, backend, workload, run, invalid, result)
            _create_batch(conn, backend, run, round_, seq, body, invalid, result, caps)
        else:
            _fail_invalid(conn, run, invalid, result)
            conn.commit()
    finally:
        body.close()


def _any_batch(conn: psycopg.Connection, run: Run) -> bool:
    return ledger_batches.any_batch(conn, run.run_pk)


class _Samples:
    """The requests the preflight checks before the run's first create call: the first and the longest."""

    def __init__(self, wanted: bool, shapes: dict[str, RequestShape] | None = None) -> None:
        self.wanted = wanted
        self.shapes = shapes or {}
        self.first: bytes | None = None
        self.longest: bytes | None = None

    def offer(self, encoded: bytes) -> None:
        if not self.wanted:
            return
        if self.first is None:
            self.first = encoded
        if self.longest is None or len(encoded) > len(self.longest):
            self.longest = encoded

    def check(self, conn, backend: BatchBackend, workload: Workload, run: Run, invalid: list, result: SubmitResult) -> None:
        """Once, before the first create: a refusal fails the run's waiting requests, then raises."""
        if not self.wanted or self.first is None:
            return
        from nightshift.batch.preflight import PreflightRefused, cascade_samples, fail_refused_run, preflight

        self.wanted = False
        distinct = [self.first] if self.longest in (None, self.first) else [self.first, self.longest]
        try:
            preflight(backend, workload, cascade_samples(
                workload, [json.loads(encoded)["params"] for encoded in distinct], self.shapes))
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
    ledger_batches.lock_admission(conn)
    queued = ledger_batches.queued_requests(conn)
    if queued + count > cap:
        conn.rollback()
        raise NotAdmitted(count, queued, cap)


def _create_batch(conn, backend: BatchBackend, run, round_, seq, body: BatchBody, invalid, result, caps: Caps
                  ) -> None:
    admit(conn, body.count, caps.max_queued)
    intent_pk, intent_at = ledger_batches.record_intent(conn, run.run_pk, round_, seq, request_count=body.count,
                                                        body_bytes=body.size, backend=backend.name)
    items.assign_to_batch(conn, run.run_pk, intent_pk, body.custom_ids)
    _fail_invalid(conn, run, invalid, result)
    conn.commit()
    try:
        batch, recovery = _create_or_adopt(conn, backend, intent_pk, intent_at, body)
    except AwaitingProof as waiting:  # the rest of the round goes on; this intent waits for its suspects
        result.awaiting_proof += waiting.batch_ids
        return
    _record_created(conn, intent_pk, batch, recovery)
    if recovery and recovery.startswith("adopted"):
        result.adopted.append(batch.id)
    result.submitted_requests += body.count
    log.info("created batch %s: round %d #%d, %d requests, %.1f MB", batch.id, round_, seq, body.count, body.size / 1e6)


def _create_or_adopt(conn, backend: BatchBackend, intent_pk: int, intent_at, body: BatchBody
                     ) -> tuple[BatchState, str | None]:
    """Create the intent's batch; after a failure that may have reached the API, adopt rather than repeat."""
    from nightshift.batch.errors import SpendLimitReached
    from nightshift.batch.polling import next_interval

    unanswered: list[str] = []
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            batch = backend.create(body)
            journal_answer(conn, intent_pk, batch.id)
            return batch, (f"{UNANSWERED_CREATE}: {'; '.join(unanswered)}"[:500] if unanswered else None)
        except Exception as exc:
            failure = backend.failure(exc)
            if failure is not None and failure.kind is ErrorKind.SPEND_LIMIT:
                raise SpendLimitReached(f"the create call of intent #{intent_pk}", failure.message) from exc
            if failure is not None and failure.kind is ErrorKind.UNREACHABLE:
                raise  # nothing listens at the URL: nothing was created, and backing off will not change that
            if failure is None or not failure.transient or attempt == CREATE_ATTEMPTS:
                raise
            delay = failure.retry_after or next_interval(0.5, attempt - 1, 8.0)
            log.warning("create call for intent #%d failed (attempt %d of %d, again in %.1fs): %r",
                        intent_pk, attempt, CREATE_ATTEMPTS, delay, exc)
            time.sleep(delay)
            if failure.refused_before_work:  # no orphan to look for
                continue
            unanswered.append(repr(exc))
            ours, unproven = identify(conn, backend, intent_pk,
                                      candidates(conn, backend, intent_pk, intent_at, body.count))
            if ours is not None:
                log.warning("the failed create call had created batch %s anyway (proven by its results' "
                            "custom_ids): adopted it", ours)
                return backend.retrieve(ours), f"adopted {ours} after a create call failed: {exc!r}"[:500]
            if unproven:  # identify has recorded them as the intent's suspects
                raise AwaitingProof(unproven) from exc
    raise AssertionError("unreachable")


def find_late_duplicates(conn: psycopg.Connection, backend: BatchBackend, run: Run, round_: int) -> list[str]:
    """Record, as suspects, batches a create call that never answered may have made after all.

    Runs before landing, long after submit: a listed batch matching such an intent (its window
    and request count) that the ledger does not know may duplicate one it does, or may be
    another team's. Nothing is cancelled on that likeness; :func:`settle_suspects` decides once
    the suspect has ended.
    """
    suspects = ledger_batches.intents_with_recovery(conn, run.run_pk, round_, UNANSWERED_CREATE)
    found = []
    for batch_pk, intent_at, request_count in suspects:
        matching = [c.id for c in candidates(conn, backend, batch_pk, intent_at, request_count)]
        if matching:
            record_suspects(conn, batch_pk, matching)
            found += matching
            log.warning("batch(es) %s may duplicate batch #%d (a create call that timed out may have gone through "
                        "late): not landed, and not cancelled unless proven ours", ", ".join(matching), batch_pk)
    return found


def _record_created(conn: psycopg.Connection, batch_pk: int, batch: BatchState, recovery: str | None = None) -> None:
    try:
        ledger_batches.record_created(conn, batch_pk, batch_id=batch.id, expires_at=batch.expires_at,
                                      processing_status=batch.processing_status, recovery=recovery)
    except psycopg.errors.UniqueViolation:
        conn.rollback()
        holder = ledger_batches.holder_of(conn, batch.id)
        if holder is None:
            raise
        raise BatchIdReissued(batch.id, batch_pk, *holder) from None
    items.mark_submitted(conn, batch_pk)
    conn.commit()


def _fail_invalid(conn: psycopg.Connection, run: Run, invalid: list, result: SubmitResult) -> None:
    """Bad source rows fail at once, with the reason, and never reach the API."""
    for custom_id, request_id, message in invalid:
        items.fail_invalid_input(conn, run.run_pk, custom_id, message)
        if request_id is not None:
            queue.mark_failed(conn, request_id, f"invalid_input: {message}")
        log.warning("%s: %s", custom_id, message)
    result.invalid_inputs += len(invalid)
    invalid.clear()


def _recover_intent(conn, backend: BatchBackend, workload: Workload, run: Run, intent: BatchRow, result: SubmitResult,
                    past_deadline: bool = False, shapes: dict[str, RequestShape] | None = None) -> None:
    batch_id = answered(conn, intent.batch_pk)
    if batch_id is not None:
        _adopt(conn, backend, intent, batch_id, f"adopted {batch_id}: the create call's journalled answer", result)
        return
    ours, unproven = identify(conn, backend, intent.batch_pk,
                              candidates(conn, backend, intent.batch_pk, intent.intent_at, intent.request_count))
    if ours is not None:
        _adopt(conn, backend, intent, ours, f"adopted orphan {ours}: its results' custom_ids are this intent's",
               result)
        return
    if unproven:  # identify has recorded them as the intent's suspects
        if past_deadline:
            log.warning("intent #%d: batch(es) %s may be its own but are still running past the run's deadline: "
                        "nothing adopted, nothing created; its requests stay unsubmitted", intent.batch_pk,
                        ", ".join(unproven))
        else:
            result.awaiting_proof += unproven
        return
    invalid: list = []
    body = BatchBody()
    try:
        requests = _encoded_requests(conn, workload, run, intent.round, intent.batch_pk, invalid, shapes)
        for custom_id, encoded in requests:
            body.add(custom_id, encoded)
        _fail_invalid(conn, run, invalid, result)
        conn.commit()
        if not body.count:
            ledger_batches.abandon(conn, intent.batch_pk, "no requests left")
            conn.commit()
            return
        ledger_batches.resize(conn, intent.batch_pk, request_count=body.count, body_bytes=body.size)
        conn.commit()
        try:
            batch, adopted = _create_or_adopt(conn, backend, intent.batch_pk, intent.intent_at, body)
        except AwaitingProof as waiting:
            result.awaiting_proof += waiting.batch_ids
            return
        _record_created(conn, intent.batch_pk, batch, adopted or "resubmitted: no batch of its own found")
    finally:
        body.close()
    result.resubmitted_intents.append(intent.batch_pk)
    result.submitted_requests += body.count
    log.warning(
        "recovered intent #%d (round %d): no listed batch was proven its own (created %s ±, %d requests), so its "
        "requests were submitted again as %s", intent.batch_pk, intent.round, intent.intent_at.isoformat(),
        intent.request_count, batch.id,
    )


def _adopt(conn, backend: BatchBackend, intent: BatchRow, batch_id: str, recovery: str, result: SubmitResult
           ) -> None:
    _record_created(conn, intent.batch_pk, backend.retrieve(batch_id), recovery)
    result.adopted.append(batch_id)
    log.warning("recovered intent #%d (round %d, %d requests): %s; the previous attempt stopped before recording it",
                intent.batch_pk, intent.round, intent.request_count, recovery)
