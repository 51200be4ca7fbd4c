"""Before paying: the run's request shape, confirmed with the Models API, and a free check of its params.

A batch accepts any params at create time and reports what the API refuses only when it ends,
as an ``errored`` result for every item: the night is paid for in time and rounds before
anyone learns a workload's request is wrong. Two calls that cost nothing come first instead:

* ``models.retrieve`` once per run: what the API says the model supports (structured outputs,
  thinking types, effort levels) wins over Nightshift's table for that run, and each
  disagreement is logged;
* ``messages.count_tokens`` on each distinct request shape of the round (the first request and
  the longest): it validates params as the Messages endpoint does. A 400 there fails the run
  before any batch exists, naming the workload, the field and the API's message.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import anthropic
import psycopg
from psycopg.types.json import Jsonb

from nightshift.batch.errors import RetryWontHelp
from nightshift.batch.ledger import Run
from nightshift.model_table import model_table, reconcile
from nightshift.workloads.definition import Workload
from nightshift.workloads.shape import Delivery, RequestShape, UnsupportedRequest

log = logging.getLogger(__name__)

#: Keyword arguments of the SDK's ``messages.count_tokens``; other params travel in ``extra_body``.
COUNT_TOKENS_KWARGS = frozenset({"messages", "model", "cache_control", "context_management", "mcp_servers",
                                 "output_config", "system", "thinking", "tool_choice", "tools"})
#: Params that only the Messages endpoint takes (limits, not content): not sent to count_tokens.
MESSAGES_ONLY = frozenset({"max_tokens", "stream", "metadata", "service_tier", "stop_sequences"})
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


def confirm_shape(client: anthropic.Anthropic, workload: Workload) -> ConfirmedShape:
    """The workload's request shape with the Models API's word on its model's capabilities."""
    caps = model_table().capabilities(workload.model)
    try:
        info = client.models.retrieve(workload.model)
    except anthropic.APIError as exc:
        log.warning("the Models API could not be asked about %s (%s): Nightshift's model table stands for this run",
                    workload.model, exc)
        return ConfirmedShape(workload.shape_for(caps), [])
    api = info.capabilities.model_dump(mode="json") if info.capabilities is not None else {}
    caps, differences = reconcile(caps, api)
    for difference in differences:
        log.warning("model table and Models API disagree on %s: %s; the API's answer is used for this run",
                    workload.model, difference)
    try:
        return ConfirmedShape(workload.shape_for(caps), differences)
    except UnsupportedRequest as exc:
        raise PreflightRefused(workload.name, "model", f"by the Models API's capabilities: {exc}") from None


def run_shape(conn: psycopg.Connection, client: anthropic.Anthropic, workload: Workload, run: Run) -> RequestShape:
    """The shape this run sends, confirmed once and kept on the run (later rounds reuse it)."""
    recorded = conn.execute("SELECT details -> 'request_shape' FROM nightshift.runs WHERE run_pk = %s",
                            (run.run_pk,)).fetchone()[0]
    if recorded:
        return shape_from_record(recorded)
    confirmed = confirm_shape(client, workload)
    conn.execute("UPDATE nightshift.runs SET details = details || jsonb_build_object('request_shape', %s::jsonb, "
                 "'capability_differences', %s::jsonb) WHERE run_pk = %s",
                 (Jsonb(confirmed.shape.as_dict()), Jsonb(confirmed.differences), run.run_pk))
    conn.commit()
    return confirmed.shape


def shape_from_record(record: dict[str, Any]) -> RequestShape:
    return RequestShape(Delivery(record["delivery"]), record["thinking"], record["effort"], record["thinks"],
                        record["effort_in_force"])


def preflight(client: anthropic.Anthropic, workload: Workload, samples: list[dict[str, Any]]) -> None:
    """Send each sample request to the token-counting endpoint; raise :class:`PreflightRefused` on a 400."""
    for params in samples:
        kwargs = {key: value for key, value in params.items() if key in COUNT_TOKENS_KWARGS}
        extra = {key: value for key, value in params.items()
                 if key not in COUNT_TOKENS_KWARGS and key not in MESSAGES_ONLY}
        try:
            client.messages.count_tokens(**kwargs, **({"extra_body": extra} if extra else {}))
        except anthropic.BadRequestError as exc:
            message = api_message(exc)
            match = _FIELD.match(message)
            raise PreflightRefused(workload.name, match.group(1) if match else "(request)", message) from None


def api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return str(error.get("message") or exc.message)


def fail_refused_run(conn: psycopg.Connection, run: Run, refused: PreflightRefused) -> int:
    """Every request of the run still waiting for a batch fails with the API's reason; returns how many."""
    from nightshift import queue

    reason = f"field {refused.field}: {refused.message}"[:2000]
    rows = conn.execute(
        "UPDATE nightshift.items SET status = 'failed', error_type = %s, error_message = %s, updated_at = now() "
        "WHERE run_pk = %s AND status = 'pending' AND batch_pk IS NULL RETURNING request_id",
        (refused.error_type, reason, run.run_pk)).fetchall()
    for (request_id,) in rows:
        if request_id is not None:
            queue.mark_failed(conn, request_id, f"{refused.error_type}: {reason}")
    conn.commit()
    return len(rows)
