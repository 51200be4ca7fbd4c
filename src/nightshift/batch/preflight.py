"""Before paying: the run's request shape, confirmed with the Models API, and a free check of its params.

A batch accepts any params at create time and reports what the API refuses only when it ends,
as an ``errored`` result for every item: the night is paid for in time and rounds before
anyone learns a workload's request is wrong. Two calls that cost nothing come first instead:

* the Models API once per run: what the API says the model supports (structured outputs,
  thinking types, effort levels) wins over Nightshift's table for that run, and each
  disagreement is logged;
* token counting on each distinct request shape of the round (the first request and
  the longest): it validates params as the Messages endpoint does. A 400 there fails the run
  before any batch exists, naming the workload, the field and the API's message.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import psycopg

from nightshift.backends.base import BatchBackend, ErrorKind
from nightshift.batch.errors import RetryWontHelp
from nightshift.batch.ledger import Run
from nightshift.ledger import items, queue, runs
from nightshift.model_table import model_table, reconcile
from nightshift.workloads.definition import Workload
from nightshift.workloads.shape import Delivery, RequestShape, UnsupportedRequest

log = logging.getLogger(__name__)

_FIELD = re.compile(r'^\W*([a-z_][a-z0-9_]*)')


class PreflightRefused(RetryWontHelp):
    """The API refused the run's params before any batch was created."""

    error_type = "invalid_request"

    def __init__(self, workload: str, field: str, message: str) -> None:
        super().__init__(f"workload {workload!r}: the API refuses its requests before any batch was created "
                         f"(field {field}): {message}")
        self.workload, self.field, self.message = workload, field, message


@dataclass(frozen=True)
class ConfirmedShape:
    shape: RequestShape
    differences: list[str]


def confirm_shape(backend: BatchBackend, workload: Workload) -> ConfirmedShape:
    """The workload's request shape with the Models API's word on its model's capabilities."""
    caps = model_table().capabilities(workload.model)
    try:
        api = backend.model_capabilities(workload.model) or {}
    except Exception as exc:
        from nightshift.batch.permanent import api_failure

        described = backend.failure(exc)
        if described is None or api_failure(described, reached=False) is not None:
            raise  # a refused key or URL would fail every later call the same way
        log.warning("the Models API could not be asked about %s (%s): Nightshift's model table stands for this run",
                    workload.model, exc)
        return ConfirmedShape(workload.shape_for(caps), [])
    caps, differences = reconcile(caps, api)
    for difference in differences:
        log.warning("model table and Models API disagree on %s: %s; the API's answer is used for this run",
                    workload.model, difference)
    try:
        return ConfirmedShape(workload.shape_for(caps), differences)
    except UnsupportedRequest as exc:
        raise PreflightRefused(workload.name, "model", f"by the Models API's capabilities: {exc}") from None


def run_shape(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, run: Run) -> RequestShape:
    """The shape this run sends, confirmed once and kept on the run (later rounds reuse it)."""
    recorded = runs.request_shape(conn, run.run_pk)
    if recorded:
        return shape_from_record(recorded)
    confirmed = confirm_shape(backend, workload)
    runs.record_request_shape(conn, run.run_pk, confirmed.shape.as_dict(), confirmed.differences)
    conn.commit()
    return confirmed.shape


def run_shapes(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, run: Run
               ) -> dict[str, RequestShape]:
    """The shape this run sends to each of the workload's models: :func:`run_shape` for its model and,
    for a cascade, each later model's confirmed with the Models API once (before the first batch) and
    kept on the run; a model the API says cannot take the request refuses the run."""
    shapes = {workload.model: run_shape(conn, backend, workload, run)}
    if workload.cascade is None:
        return shapes
    from nightshift.ledger import cascades

    recorded = cascades.cascade_shapes(conn, run.run_pk)
    if recorded is None:
        recorded = {}
        for model in workload.models[1:]:
            confirmed = confirm_shape(backend, workload.on_model(model))
            recorded[model] = confirmed.shape.as_dict()
        cascades.record_cascade_shapes(conn, run.run_pk, workload.models, recorded)
        conn.commit()
    return {**shapes, **{model: shape_from_record(record) for model, record in recorded.items()}}


def cascade_samples(workload: Workload, samples: list[dict[str, Any]], shapes: dict[str, RequestShape]
                    ) -> list[dict[str, Any]]:
    """``samples`` (first-model params) and the same items' params on every later cascade model, so the
    free check before the first batch covers each model's requests."""
    from nightshift.workloads.requests import params_around

    later = [params_around(workload.on_model(model), params["messages"], shapes.get(model))
             for model in workload.models[1:] for params in samples]
    return [*samples, *later]


def shape_from_record(record: dict[str, Any]) -> RequestShape:
    return RequestShape(Delivery(record["delivery"]), record["thinking"], record["effort"], record["thinks"],
                        record["effort_in_force"])


def preflight(backend: BatchBackend, workload: Workload, samples: list[dict[str, Any]]) -> None:
    """Count each sample request's tokens; raise :class:`PreflightRefused` when the API refuses it."""
    for params in samples:
        try:
            backend.count_tokens(params)
        except Exception as exc:
            failure = backend.failure(exc)
            if failure is None or failure.kind is not ErrorKind.INVALID_REQUEST:
                raise
            match = _FIELD.match(failure.message)
            raise PreflightRefused(workload.name, match.group(1) if match else "(request)", failure.message) from None


def fail_refused_run(conn: psycopg.Connection, run: Run, refused: PreflightRefused) -> int:
    """Every request of the run still waiting for a batch fails with the API's reason; returns how many."""
    reason = f"field {refused.field}: {refused.message}"[:2000]
    rows = items.fail_unbatched(conn, run.run_pk, refused.error_type, reason)
    for request_id in rows:
        if request_id is not None:
            queue.mark_failed(conn, request_id, f"{refused.error_type}: {reason}")
    conn.commit()
    return len(rows)
