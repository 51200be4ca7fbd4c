"""The streaming path Nightshift replaces: one ``messages.create`` per request, at full price.

It is kept on purpose: it is the parity baseline (same workload definition, same
destination rows), the cost baseline, and still the right tool when a person is waiting.
Each request is written in a transaction of its own together with its queue row, so a
crash loses at most the request in flight, and that one is re-taken by the same run.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from nightshift import queue
from nightshift.backends.base import BatchBackend
from nightshift.batch.permanent import api_failure
from nightshift.destination import destination_row, upsert_statement, write_row
from nightshift.workloads.definition import Workload
from nightshift.workloads.replies import InvalidOutput, as_dict, extract_output
from nightshift.workloads.requests import InvalidInput, build_params

log = logging.getLogger(__name__)


@dataclass
class StreamingSummary:
    workload: str
    requests: int = 0
    succeeded: int = 0
    failed: Counter = field(default_factory=Counter)
    deferred: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": dict(self.failed),
            "deferred": self.deferred,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


TERMINAL_API_ERRORS = {"invalid_request_error", "not_found_error", "request_too_large"}


def run_streaming(
    conn: psycopg.Connection,
    backend: BatchBackend,
    workload: Workload,
    *,
    claimer: str,
    limit: int | None = None,
    claim_size: int = 25,
) -> StreamingSummary:
    """Process the workload's pending requests one API call at a time."""
    from nightshift.batch.preflight import confirm_shape

    from nightshift.contract import check_contract

    check_contract(conn, workload)  # before anything is claimed or sent
    summary = StreamingSummary(workload.name)
    upsert = upsert_statement(workload)
    shapes = None
    while limit is None or summary.requests < limit:
        size = claim_size if limit is None else min(claim_size, limit - summary.requests)
        claimed = queue.claim(conn, workload, claimer, size)
        if not claimed:
            break
        rows = queue.fetch_source_rows(conn, workload, [key for _, key in claimed])
        try:
            # once a run, when there is work: each model's (a cascade has several)
            shapes = shapes or {model: confirm_shape(backend, workload.on_model(model)).shape
                                for model in workload.models}
            for request_id, source_key in claimed:
                summary.requests += 1
                outcome = _process_one(conn, backend, workload, upsert, request_id, source_key,
                                       rows.get(source_key), shapes)
                if outcome == "succeeded":
                    summary.succeeded += 1
                elif outcome == "deferred":
                    summary.deferred += 1
                else:
                    summary.failed[outcome] += 1
        except Exception as exc:
            final = api_failure(backend.failure(exc), reached=False)
            if final is None:
                raise
            conn.rollback()  # what is still claimed goes back to the queue for the next night, saying why
            queue.release(conn, [request_id for request_id, _ in claimed], error=f"not_submitted: {final}"[:2000])
            conn.commit()
            raise final from exc
        conn.commit()
    log.info(
        "streaming %s: %d requests, %d succeeded, failed %s, %d handed back to the queue",
        workload.name, summary.requests, summary.succeeded, dict(summary.failed) or "none", summary.deferred,
    )
    return summary


def _process_one(conn, backend: BatchBackend, workload, upsert, request_id, source_key, row,
                 shapes=None) -> str:
    """Call the API for one request and record its outcome; returns the outcome's name. A cascade
    workload's request goes to its models in turn, within this one handling, until one's answer lands
    (the last model's lands whatever it says, as on the batch path); every call's usage is recorded."""
    where = f"request {request_id} ({workload.source.table} {workload.source.key}={source_key})"
    if row is None:
        return _fail(conn, request_id, "invalid_input", f"{where}: source row does not exist")
    answered: list[dict] = []  # the replies of the models that passed it on: billed all the same
    for model in workload.models:
        outcome = _ask_one(conn, backend, workload, workload.on_model(model), upsert, request_id, source_key,
                           row, (shapes or {}).get(model), where, answered)
        if outcome is not None:
            return outcome
    raise AssertionError("the last cascade model's answer always lands")


def _ask_one(conn, backend: BatchBackend, workload, on, upsert, request_id, source_key, row, shape, where,
             answered: list[dict]) -> str | None:
    """One model's call for the request (``on``: the workload on that model); None when its answer
    goes on to the next cascade model (its reply kept in ``answered``, recorded with the last)."""
    from nightshift.batch.escalation import escalation_reason, invalid_escalates

    try:
        params = build_params(on, row, shape)
    except InvalidInput as exc:
        return _fail(conn, request_id, exc.error_type, str(exc))
    try:
        message = as_dict(backend.create_message(params))
    except Exception as exc:
        if answered:  # the models before this one answered and were paid, whatever happens to the request
            _record_usage(conn, on, request_id, answered)
            conn.commit()
        failure = backend.failure(exc)
        if failure is None or api_failure(failure, reached=False) is not None:
            raise  # a refused key or URL: run_streaming stops the night and hands the requests back
        error_type = failure.error_type
        if error_type in TERMINAL_API_ERRORS:
            return _fail(conn, request_id, "invalid_request", f"{where}: {error_type}: {exc}")
        log.warning("%s: %s after the client's retries; handing it back to the queue", where, error_type)
        queue.release(conn, [request_id], error=f"{error_type}: {exc}"[:1000])
        conn.commit()
        return "deferred"
    try:
        output = extract_output(on, message)
    except InvalidOutput as exc:
        answered.append(message)
        if invalid_escalates(workload, on.model):
            log.info("%s: invalid_output from %s, escalated: %s", where, on.model, exc)
            return None
        _record_usage(conn, on, request_id, answered)  # billed all the same
        return _fail(conn, request_id, exc.error_type, f"{where}: {exc}")
    answered.append(message)
    if (reason := escalation_reason(workload, on.model, output)) is not None:
        log.info("%s: escalated (%s)", where, reason)
        return None
    _record_usage(conn, on, request_id, answered)
    write_row(conn, on, upsert, destination_row(on, source_key, output, model=message["model"],
                                               request_id=request_id, source_row=row))
    queue.mark_done(conn, [request_id])
    conn.commit()
    return "succeeded"


def _record_usage(conn, workload: Workload, request_id: int, messages: list[dict]) -> None:
    """What this request cost at the standard rate (the streaming path's side of the comparison): every
    reply it took (a cascade's models before the one that answered, too), under the last one's model;
    added to what earlier handlings of the request recorded (a cascade handed back half-way)."""
    from nightshift.batch.costing import usage_of
    from nightshift.costs import Usage, price_table
    from nightshift.ledger.migration import record_stream_usage

    prices = price_table()
    usage, cost = Usage(), 0
    for message in messages:
        one = usage_of(message.get("usage") or {}, workload)
        usage += one
        cost += prices.cost(one, message.get("model") or workload.model, batch=False)
    message = messages[-1]
    record_stream_usage(conn, request_id=request_id, workload=workload.name,
                        model=message.get("model") or workload.model, input_tokens=usage.input_tokens,
                        output_tokens=usage.output_tokens,
                        cache_write_tokens=usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
                        cache_read_tokens=usage.cache_read_tokens, cost_usd=cost)


def _fail(conn, request_id: int, reason: str, message: str) -> str:
    log.warning("%s", message)
    queue.mark_failed(conn, request_id, f"{reason}: {message}"[:2000])
    conn.commit()
    return reason
