"""Land: stream each ended batch's results into the destination table, exactly once.

Results are read outcome by outcome from the backend's results stream and written in slices: each slice is
COPYed into a temporary table and moved into the destination, the ledger and the request
queue by ONE statement, in ONE transaction, while the next slices are read and parsed. Only items still ``submitted`` in this round are written, and the
same transaction marks them landed, so running the step again after a crash half-way lands
every result exactly once.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.backends.base import BatchBackend, ErrorKind, Outcome, OutcomeKind
from nightshift.batch.costing import usage_of
from nightshift.batch.escalation import Escalation, escalation_reason, invalid_escalates, invalid_reason
from nightshift.batch.ledger import BatchRow, Run, batches, record_batch_state
from nightshift.batch.errors import AccountProblem
from nightshift.costs import PriceTable, price_table
from nightshift.batch.polling import BatchSnapshot
from nightshift.destination import upsert_ctes
from nightshift.ledger import batches as ledger_batches
from nightshift.ledger import items, queue
from nightshift.ledger.status import BatchStatus, CancelReason, ItemStatus
from nightshift.ledger.trials import trial_table
from nightshift.migration.modes import shadow_table
from nightshift.queue import column_type, source_key_cast
from nightshift.workloads.definition import Workload
from nightshift.workloads.replies import InvalidOutput, extract_output

log = logging.getLogger(__name__)

SLICE = 10_000  # results per transaction (5,000: 20% slower at 100,000; 20,000: no faster)
WRITERS = 2  # connections writing slices at once
#: batch-processing: an item error other than invalid_request_error can be retried directly, except the
#: account's own problems, which a resubmission would meet again: those stop the night (``AccountProblem``).
ACCOUNT_ITEM_ERRORS = frozenset({"authentication_error", "permission_error", "not_found_error", "billing_error"})
FINAL_ITEM_ERRORS = frozenset({"invalid_request_error"}) | ACCOUNT_ITEM_ERRORS
ITEM_COLUMNS = ("custom_id", "status", "error_type", "error_message", "stop_reason", "input_tokens", "output_tokens",
                "cache_creation_input_tokens", "cache_read_input_tokens", "cache_write_5m_tokens",
                "cache_write_1h_tokens", "cost_usd")


class BatchNotEnded(RuntimeError):
    pass


@dataclass
class LandResult:
    round: int
    landed_batches: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "landed_batches": self.landed_batches, "outcomes": dict(self.outcomes)}


def land_round(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, run: Run,
               round_: int) -> LandResult:
    """Land the round's ended batches; when it fails, why is kept on the run for what it leaves unlanded."""
    from nightshift.batch.causes import recorded
    from nightshift.ledger.runs import Step

    with recorded(conn, run, Step.LAND, backend):
        return _land_round(conn, backend, workload, run, round_)


def _land_round(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, run: Run,
                round_: int) -> LandResult:
    from nightshift.batch.ownership import settle_late_duplicates
    from nightshift.batch.submit import find_late_duplicates

    result = LandResult(round_)
    find_late_duplicates(conn, backend, run, round_)
    settle_late_duplicates(conn, backend, workload)
    to_land = batches(conn, run, round_, statuses=(BatchStatus.SUBMITTED, BatchStatus.ENDED))
    extra = _extra_connections(conn, WRITERS - 1) if to_land else []
    refused: psycopg.Error | None = None
    try:
        writers = [SliceWriter(c, workload, run, round_) for c in (conn, *extra)]
        for batch in to_land:
            try:
                _land_batch(conn, backend, workload, run, batch, writers, result)
            except psycopg.Error as exc:  # the destination refused it: the other batches still record their cost
                log.error("batch %s could not be landed: %r", batch.backend_batch_id, exc)
                refused = refused or exc
    finally:
        for c in extra:
            c.close()
    if refused is not None:
        raise refused
    log.info("landed round %d of run %s: %s", round_, run.run_pk, dict(result.outcomes) or "nothing to land")
    account = items.failed_by(conn, run.run_pk, round_, ACCOUNT_ITEM_ERRORS)
    if account:
        raise AccountProblem(run.run_pk, account)
    return result


def _extra_connections(conn: psycopg.Connection, count: int) -> list[psycopg.Connection]:
    """More connections to the same database, for writers beside ``conn``; fewer if refused."""
    extra = []
    for _ in range(count):
        try:
            extra.append(psycopg.connect(conn.info.dsn, password=conn.info.password))
        except psycopg.Error as exc:
            log.warning("landing over %d connection(s): another could not be opened: %s", 1 + len(extra), exc)
            break
    return extra


def _land_batch(conn, backend: BatchBackend, workload, run, batch: BatchRow, writers: list[SliceWriter],
                result: LandResult) -> None:
    retrieved = backend.retrieve(batch.backend_batch_id)
    snapshot = BatchSnapshot.of(retrieved)
    record_batch_state(conn, snapshot.id, snapshot.processing_status, snapshot.request_counts, retrieved.ended_at)
    conn.commit()
    if not snapshot.ended:
        raise BatchNotEnded(f"batch {batch.backend_batch_id} is {snapshot.processing_status}, not ended: "
                            "nothing to land yet")
    cancel_reason = ledger_batches.cancel_reason(conn, batch.batch_pk)
    sent_to = items.models_of_batch(conn, batch.batch_pk, workload.model) if workload.cascade else None
    outcome_of = _OutcomeReader(workload, run, batch.round, price_table(), cancel_reason, sent_to)
    # Slices are read and parsed while earlier ones are written, by WRITERS connections at once:
    # Python and Postgres work at the same time, and Postgres on more than one core. At most
    # WRITERS + 1 slices are in memory; a failure while reading still lets the slices being
    # written commit (or roll back) whole before it is raised. Concurrent slices touch disjoint
    # items and queue rows; destination keys are upserted in key order, so two slices that share
    # a key (one product queued twice) wait for each other instead of deadlocking.
    with ExitStack() as stack:
        try:
            outcomes = stack.enter_context(backend.results(batch.backend_batch_id))  # read as they arrive
        except Exception as exc:
            failure = backend.failure(exc)
            if failure is None or failure.kind is not ErrorKind.NOT_FOUND:
                raise
            _results_archived(conn, run, batch, retrieved, result)
            return
        pool = stack.enter_context(ThreadPoolExecutor(len(writers), thread_name_prefix="land-writer"))
        writing: deque = deque()
        try:
            for number, chunk in enumerate(iter(lambda: list(islice(outcomes, SLICE)), [])):
                rows = [outcome_of(outcome) for outcome in chunk]
                del chunk
                if len(writing) == len(writers):  # the oldest slice's writer is the one to reuse
                    result.outcomes.update(writing.popleft().result())
                writing.append(pool.submit(writers[number % len(writers)].write, rows))
        finally:
            while writing:
                result.outcomes.update(writing.popleft().result())
    missing = items.retry_missing_results(conn, batch.batch_pk)
    if missing:
        log.warning("batch %s ended without results for %d requests; they go to the next round",
                    batch.backend_batch_id, missing)
        result.outcomes["retry:missing_result"] += missing
    ledger_batches.mark_landed(conn, batch.batch_pk)
    conn.commit()
    result.landed_batches.append(batch.backend_batch_id)
    log.info("landed batch %s (%d requests)", batch.backend_batch_id, batch.request_count)


def _results_archived(conn, run: Run, batch: BatchRow, retrieved, result: LandResult) -> None:
    """The API keeps results 29 days after creation; a landing that comes later cannot succeed."""
    message = (f"the results of batch {batch.backend_batch_id} (created {retrieved.created_at:%Y-%m-%d %H:%M} UTC) "
               "are no longer available: the API archives them 29 days after creation; "
               "collect these requests again to process them")
    failed = items.fail_batch_items(conn, batch.batch_pk, error_type="results_archived", message=message,
                                    shadow=run.shadow)
    ledger_batches.abandon(conn, batch.batch_pk, message)
    conn.commit()
    log.error("%s (%d requests recorded as failed: results_archived)", message, failed)
    result.outcomes["failed:results_archived"] += failed


class _OutcomeReader:
    """Turns one outcome into one staging row: the item's columns (``ITEM_COLUMNS``), then
    the destination values and the model (NULL unless the result succeeded and validated).

    A cascade workload's result is read as the model it was sent to (``sent_to``, by custom_id)
    answered it: a valid answer meeting an ``escalate_on`` rule (or an invalid one, when
    ``invalid_output`` escalates) from a model other than the last is marked ``retry`` as
    ``escalated``, with the reason and its usage, and nothing for the destination."""

    def __init__(self, workload: Workload, run: Run, round_: int, prices: PriceTable,
                 cancel_reason: CancelReason | None = None, sent_to: dict[str, str] | None = None) -> None:
        self.workload = workload
        self.sent_to = sent_to or {}
        self.canceled = CANCELED_OUTCOMES[cancel_reason]
        self.prices = prices
        self.billed_on = run.billed_on
        self.retry_invalid_output = round_ < workload.batch.validation_retries
        self.fields = tuple(workload.destination.columns.values())
        self.no_destination = (None,) * (len(self.fields) + 1)
        self._costed: dict[tuple, tuple] = {}

    def _usage(self, message: dict[str, Any], sent: str) -> tuple:
        """Token counts as the ledger stores them, and their cost at the batch rate.

        A night has few distinct usages (token counts repeat), so each is priced once.
        """
        raw = message.get("usage") or {}
        model = message.get("model") or sent
        split = raw.get("cache_creation") or {}
        key = (model, raw.get("input_tokens"), raw.get("output_tokens"), raw.get("cache_creation_input_tokens"),
               raw.get("cache_read_input_tokens"), split.get("ephemeral_5m_input_tokens"),
               split.get("ephemeral_1h_input_tokens"))
        costed = self._costed.get(key)
        if costed is None:
            usage = usage_of(raw, self.workload)
            cost = self.prices.cost(usage, model, batch=True, on=self.billed_on)
            costed = (usage.input_tokens, usage.output_tokens, raw.get("cache_creation_input_tokens") or 0,
                      usage.cache_read_tokens, usage.cache_write_5m_tokens, usage.cache_write_1h_tokens, cost)
            if len(self._costed) > 100_000:
                self._costed.clear()
            self._costed[key] = costed
        return costed

    def __call__(self, outcome: Outcome) -> tuple:
        custom_id, kind = outcome.custom_id, outcome.kind
        if kind is OutcomeKind.SUCCEEDED:
            message = outcome.message
            sent = self.sent_to.get(custom_id, self.workload.model)
            usage = self._usage(message, sent)
            stop_reason = message.get("stop_reason")
            try:
                output = extract_output(self.workload.on_model(sent), message)
            except InvalidOutput as exc:
                if invalid_escalates(self.workload, sent):
                    return (custom_id, ItemStatus.RETRY, Escalation.ESCALATED, invalid_reason(sent, str(exc)),
                            stop_reason, *usage, *self.no_destination)
                status = ItemStatus.RETRY if self.retry_invalid_output else ItemStatus.FAILED
                return (custom_id, status, exc.error_type, str(exc), stop_reason, *usage, *self.no_destination)
            if (reason := escalation_reason(self.workload, sent, output)) is not None:
                return (custom_id, ItemStatus.RETRY, Escalation.ESCALATED, reason, stop_reason, *usage,
                        *self.no_destination)
            return (custom_id, ItemStatus.SUCCEEDED, None, None, stop_reason, *usage,
                    *[_adapt(output[f]) for f in self.fields], message.get("model") or sent)
        if kind is OutcomeKind.ERRORED:
            error_type = outcome.error_type or "api_error"
            status = ItemStatus.FAILED if error_type in FINAL_ITEM_ERRORS else ItemStatus.RETRY
            reason = "invalid_request" if error_type == "invalid_request_error" else error_type
            return (custom_id, status, reason, outcome.error_message, None, *_NO_USAGE, *self.no_destination)
        if kind is OutcomeKind.EXPIRED:
            return (custom_id, ItemStatus.RETRY, "expired", "the batch expired before this request was processed",
                    None, *_NO_USAGE, *self.no_destination)
        return (custom_id, *self.canceled, None, *_NO_USAGE, *self.no_destination)


#: A canceled request's outcome, by who cancelled its batch: the run's deadline (final), a killed
#: task (the retried night resubmits it), or someone outside Nightshift (final: they meant it).
CANCELED_OUTCOMES = {
    CancelReason.DEADLINE: (ItemStatus.FAILED, "deadline_exceeded",
                            "the run's deadline passed and its batch was cancelled before this request was processed"),
    CancelReason.KILLED: (ItemStatus.RETRY, "canceled",
                          "the task was killed and its batch cancelled before this request was processed"),
    None: (ItemStatus.FAILED, "canceled", "the batch was canceled before this request was processed"),
}
_NO_USAGE = (None,) * 7  # errored, canceled and expired requests are not billed


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, (dict, list)) else value


class SliceWriter:
    """Writes one slice of outcomes in one transaction: the ledger items, the destination and
    the queue, by one statement over one staging table.

    The items update comes first and returns only the items that were still ``submitted`` in
    this round; the destination upsert and the queue update read its output. A result that
    was already landed (a re-run after a crash) therefore writes nothing anywhere, and two
    landings running at once cannot both take an item: the second waits on the row lock and
    then finds it no longer ``submitted``.
    """

    def __init__(self, conn: psycopg.Connection, workload: Workload, run: Run, round_: int) -> None:
        self.conn = conn
        dest = workload.destination
        schema, table = dest.table.split(".")
        value_columns = list(dest.columns)
        # each row records the prompt version of the model it was sent to (a cascade's differ by model)
        self.params = {"run_pk": run.run_pk, "round": round_, "prompt_version": workload.prompt_version,
                       "first_model": workload.model,
                       "versions": Jsonb({m: workload.on_model(m).prompt_version for m in workload.models})}
        staging = sql.Identifier(f"land_{workload.name}")
        self.create_staging = sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
            "SELECT ''::text AS custom_id, ''::text AS status, ''::text AS error_type, ''::text AS error_message, "
            "''::text AS stop_reason, 0::int AS input_tokens, 0::int AS output_tokens, "
            "0::int AS cache_creation_input_tokens, 0::int AS cache_read_input_tokens, "
            "0::int AS cache_write_5m_tokens, 0::int AS cache_write_1h_tokens, 0::numeric AS cost_usd, "
            "{values}, ''::text AS model FROM {dest} WITH NO DATA"
        ).format(staging=staging, values=sql.SQL(", ").join(map(sql.Identifier, value_columns)),
                 dest=sql.Identifier(schema, table))
        # Temp tables are never auto-analyzed: without this the planner takes a slice for one
        # row and joins it by nested loop (measured: 14.6 s instead of 0.1 s per 5,000 results).
        # The row count and the join key's statistics are all the plan needs (all columns: 3× slower).
        self.analyze_staging = sql.SQL("ANALYZE {} (custom_id)").format(staging)
        self.copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            staging, sql.SQL(", ").join(map(sql.Identifier, [*ITEM_COLUMNS, *value_columns, "model"])))
        key_type = column_type(conn, dest.table, dest.key)
        landed = items.land_from(staging, ITEM_COLUMNS, value_columns)
        # Two queued requests for one source key (a product changed twice) may land in one slice:
        # the later request's result wins, as it would have on the streaming path.
        target = trial_table(workload) if run.trial else shadow_table(workload) if run.shadow else None
        self.params.update(ns_destination=target or dest.table, ns_workload=workload.name)
        values = [sql.SQL("l.{}").format(sql.Identifier(c)) for c in value_columns]
        source = sql.SQL("")
        if dest.source_columns:  # copied from the source row as it is now, in this same statement
            source_schema, source_table = workload.source.table.split(".")
            values += [sql.SQL("s.{}").format(sql.Identifier(c)) for c in dest.source_columns.values()]
            source = sql.SQL(" LEFT JOIN {table} s ON s.{key} = {cast}").format(
                table=sql.Identifier(source_schema, source_table), key=sql.Identifier(workload.source.key),
                cast=source_key_cast(conn, workload).cast(sql.SQL("l.source_key")))
        writes = upsert_ctes(workload, table=target, select=sql.SQL(
            "SELECT DISTINCT ON (l.source_key) l.source_key::{key_type}, {values}, l.model, "
            "coalesce(%(versions)s::jsonb ->> l.item_model, %(prompt_version)s), "
            "l.request_id FROM landed l{source} WHERE l.status = 'succeeded' "
            "ORDER BY l.source_key, l.request_id DESC NULLS LAST").format(
            key_type=key_type, values=sql.SQL(", ").join(values), source=source))
        parts = [sql.SQL("landed AS ({})").format(landed), *writes,
                 sql.SQL("attempted AS ({})").format(items.attempts_from(sql.Identifier("landed")))]
        if target is None:  # a shadow run leaves the queue to the streaming path; a trial holds no request
            parts.append(sql.SQL("queue AS ({})").format(queue.CLOSE_LANDED))
        self.land = sql.SQL("WITH {} SELECT count(*) FROM landed").format(sql.SQL(", ").join(parts))

    def write(self, rows: list[tuple]) -> Counter:
        """Land one slice (rows from :class:`_OutcomeReader`) and commit; returns the outcome counts.

        When the slice cannot be landed (the destination refuses it: a missing or mistyped
        column, say), what the API billed for it is still recorded on its items, which stay
        ``submitted`` for a retry: cost comes from the results, landed or not.
        """
        counts: Counter = Counter(str(row[1]) if row[1] == ItemStatus.SUCCEEDED else f"{row[1]}:{row[2]}"
                                  for row in rows)
        try:
            with self.conn.cursor() as cur:
                # The CTEs the statement joins (the landed items, the rows, their delivery records) carry
                # the planner's guesses, often a handful of rows: a nested loop over two CTEs of a whole
                # slice compares every pair (measured: land 3.4x slower). Hash joins for this statement.
                cur.execute("SET LOCAL enable_nestloop = off")
                cur.execute(self.create_staging)
                with cur.copy(self.copy) as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(self.analyze_staging)
                cur.execute(self.land, self.params)
            self.conn.commit()
        except psycopg.Error:
            self.conn.rollback()
            self._record_billed(rows)
            raise
        return counts

    def _record_billed(self, rows: list[tuple]) -> None:
        usage_at = ITEM_COLUMNS.index("input_tokens")
        billed = [(*row[usage_at:usage_at + 7], self.params["run_pk"], self.params["round"], row[0])
                  for row in rows if row[usage_at] is not None]
        try:
            items.record_billed(self.conn, billed)
            self.conn.commit()
            log.warning("a slice of %d results could not be landed; the usage and cost of its %d billed requests "
                        "are recorded on their items", len(rows), len(billed))
        except psycopg.Error as exc:
            self.conn.rollback()
            log.error("could not record the billed usage of a slice that failed to land: %r", exc)
