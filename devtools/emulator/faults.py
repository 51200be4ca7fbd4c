"""Faults injected on demand, so failure handling can be tested deterministically.

A fault is a JSON object with a ``kind``:

``spend_limit`` the endpoint answers the tier spend-cap 429: ``rate_limit_error`` with
                ``details.error_code`` ``enforced_spend_limit_reached`` and no ``retry-after``
``status``      the endpoint answers with an error status instead of working
                (``status``: 429, 500, 529, …; ``error_type`` and ``message`` optional;
                ``retry_after`` seconds → ``retry-after`` and ``retry-after-ms`` headers,
                1 s by default for 429; ``should_retry`` → ``x-should-retry``)
``delay``       the endpoint answers ``seconds`` (real seconds) late, having read the request
                first, so the late work happens even if the client gave up; with ``after: true`` it
                does its work first and then holds the answer, as when a response is lost
                after the server acted (a client that times out has still created the batch)
``cut``         the results stream stops after ``after_lines`` lines and the connection is
                closed without finishing the response; with ``stall_seconds`` it pauses that
                long instead and then goes on (a consumer can be killed mid-stream on cue)
``item_error``  matching batch items / messages come back errored with ``error_type``
                (``overloaded_error``, ``api_error``, ``invalid_request_error`` …)
``perturb``     matching replies are replaced by a different but still valid reply, or, with
                ``mode``, by a reply that is wrong in one named way (see ``PERTURB_MODES``)

Targeting: ``endpoint`` (``create``, ``retrieve``, ``list``, ``cancel``, ``delete``,
``results``, ``messages``, ``count_tokens`` or ``*``) for the first three kinds;
``custom_id`` (a regular expression, full match) and/or ``params_hash`` for the last two.
``rate`` (0–1, default 1) fires the fault on that fraction of matching calls — evenly spaced
by a persisted per-fault counter for endpoint faults (rate 0.5 → every 2nd call), by a stable
hash of ``seed``/custom_id/params for items — and ``count`` stops it after N firings.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

from emulator.errors import DEFAULT_MESSAGES, ERROR_TYPE_BY_STATUS, ApiError
from emulator.hashing import unit_interval
from emulator.store import FaultRow, Store

ENDPOINTS = ("create", "retrieve", "list", "cancel", "delete", "results", "messages", "count_tokens", "models")
ENDPOINT_KINDS = ("status", "delay", "cut", "spend_limit")
#: rate-limits page: the 429 of an organization over its tier's monthly spend cap — the same error
#: type as a rate limit, but with its own ``error_code`` and no ``retry-after``: retrying cannot help.
SPEND_LIMIT_MESSAGE = (
    "You have reached your API usage limits: your organization has crossed its monthly API usage "
    "threshold, set based on your organization's API tier. You will regain access on {regain} at 00:00 UTC."
)
SPEND_LIMIT_ERROR_CODE = "enforced_spend_limit_reached"
ITEM_KINDS = ("item_error", "perturb")
KINDS = ENDPOINT_KINDS + ITEM_KINDS
#: What a ``perturb`` fault does to a structured reply (``mode``, default ``valid``):
#: ``valid`` a different reply that still validates; ``not_json`` prose instead of the tool call;
#: ``schema_violation`` JSON that breaks the schema; ``max_tokens`` cut short at ``max_tokens``;
#: ``unapproved_value`` a value outside an enum (a prompt-injected label), ``nul_character`` /
#: ``lone_surrogate`` a string holding U+0000 / an unpaired U+D800 (still valid JSON).
PERTURB_MODES = ("valid", "not_json", "schema_violation", "max_tokens", "unapproved_value", "nul_character",
                 "lone_surrogate")
ITEM_MESSAGES = {
    "overloaded_error": "Overloaded (emulated item fault).",
    "api_error": "Internal server error (emulated item fault).",
    "invalid_request_error": "Invalid request (emulated item fault).",
}


class FaultSpecError(ValueError):
    """A fault description that cannot be used."""


def normalize_fault(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a fault description and fill in its defaults."""
    if not isinstance(raw, dict):
        raise FaultSpecError("a fault must be a JSON object")
    spec = dict(raw)
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    rate = float(spec.get("rate", 1.0))
    if not 0.0 <= rate <= 1.0:
        raise FaultSpecError("rate must be between 0 and 1")
    spec["rate"] = rate
    if spec.get("count") is not None:
        spec["count"] = int(spec["count"])
        if spec["count"] < 0:
            raise FaultSpecError("count must be >= 0")
    spec["seed"] = str(spec.get("seed", "0"))
    if kind in ENDPOINT_KINDS:
        endpoint = spec.get("endpoint", "results" if kind == "cut" else "*")
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise FaultSpecError(f"endpoint must be one of {', '.join(ENDPOINTS)} or '*'; got {endpoint!r}")
        spec["endpoint"] = endpoint
    if kind == "status":
        status = int(spec.get("status", 0))
        if not 400 <= status <= 599:
            raise FaultSpecError("status must be an HTTP error status (400-599)")
        spec["status"] = status
        spec.setdefault("error_type", ERROR_TYPE_BY_STATUS.get(status, "api_error"))
        if status == 429:
            spec.setdefault("retry_after", 1.0)
    elif kind == "spend_limit":
        spec.setdefault("regain_on", "the first day of next month")
    elif kind == "delay":
        spec["seconds"] = float(spec.get("seconds", 1.0))
        spec["after"] = bool(spec.get("after", False))
    elif kind == "cut":
        if spec["endpoint"] != "results":
            raise FaultSpecError("a cut fault only applies to the results endpoint")
        spec["after_lines"] = int(spec.get("after_lines", 0))
        spec["stall_seconds"] = float(spec.get("stall_seconds", 0.0))
    elif kind == "item_error":
        spec.setdefault("error_type", "overloaded_error")
    elif kind == "perturb":
        spec.setdefault("mode", "valid")
        if spec["mode"] not in PERTURB_MODES:
            raise FaultSpecError(f"mode must be one of {', '.join(PERTURB_MODES)}; got {spec['mode']!r}")
    if kind in ITEM_KINDS:
        pattern = spec.get("custom_id")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise FaultSpecError(f"custom_id is not a valid regular expression: {exc}") from exc
    return spec


def parse_fault_argument(text: str) -> dict[str, Any]:
    """Parse ``--fault``: JSON, or ``kind key=value …`` (e.g. ``status endpoint=retrieve status=529``)."""
    text = text.strip()
    if text.startswith("{"):
        return normalize_fault(json.loads(text))
    spec: dict[str, Any] = {}
    for token in shlex.split(text):
        if "=" not in token:
            spec["kind"] = token
            continue
        key, value = token.split("=", 1)
        spec[key] = _scalar(value)
    return normalize_fault(spec)


def _scalar(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


@dataclass
class EndpointPlan:
    """What injected faults do to one call of an endpoint."""

    delay_seconds: float = 0.0
    hold_seconds: float = 0.0
    error: ApiError | None = None
    cut_after_lines: int | None = None
    stall_seconds: float = 0.0


@dataclass
class ItemPlan:
    """What injected faults do to one batch item or one message."""

    error: ApiError | None = None
    perturb: str | None = None  # the perturb fault's mode


class FaultBook:
    """The active faults, persisted in the store together with their counters."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, raw: dict[str, Any]) -> dict[str, Any]:
        spec = normalize_fault(raw)
        fault_id = self.store.add_fault(spec)
        return {"id": fault_id, **spec, "calls": 0, "fired": 0}

    def describe(self) -> list[dict[str, Any]]:
        rows = self.store.list_faults()
        return [{"id": row.id, **row.spec, "calls": row.calls, "fired": row.fired} for row in rows]

    def clear(self) -> None:
        self.store.clear_faults()

    def delete(self, fault_id: int) -> bool:
        return self.store.delete_fault(fault_id)

    def endpoint_plan(self, endpoint: str) -> EndpointPlan:
        """Decide, and count, the faults for one call of ``endpoint`` (first status/cut fault wins)."""
        plan = EndpointPlan()
        if not self._endpoint_faults(endpoint):
            return plan  # the common case: no write transaction at all
        with self.store.transaction():  # counters are read and bumped atomically
            for row in self._endpoint_faults(endpoint):
                kind = row.spec["kind"]
                if (kind == "cut" and plan.cut_after_lines is not None) or (
                        kind in ("status", "spend_limit") and plan.error):
                    continue
                if not self._fires_by_counter(row):
                    continue
                if kind == "delay" and row.spec.get("after"):
                    plan.hold_seconds += row.spec["seconds"]
                elif kind == "delay":
                    plan.delay_seconds += row.spec["seconds"]
                elif kind == "status":
                    plan.error = _status_error(row.spec)
                elif kind == "spend_limit":
                    plan.error = spend_limit_error(row.spec["regain_on"])
                else:
                    plan.cut_after_lines = row.spec["after_lines"]
                    plan.stall_seconds = row.spec.get("stall_seconds", 0.0)
        return plan

    def _endpoint_faults(self, endpoint: str) -> list[FaultRow]:
        return [
            row
            for row in self.store.list_faults()
            if row.spec["kind"] in ENDPOINT_KINDS and row.spec["endpoint"] in ("*", endpoint)
        ]

    def item_planner(self) -> ItemPlanner:
        """Load the item faults once; use the planner for a run of items, then :meth:`ItemPlanner.save`."""
        rows = [row for row in self.store.list_faults() if row.spec["kind"] in ITEM_KINDS]
        return ItemPlanner(self.store, rows)

    def _fires_by_counter(self, row: FaultRow) -> bool:
        """Evenly spaced: the n-th matching call fires when floor(n*rate) grows."""
        spec = row.spec
        calls = row.calls + 1
        exhausted = spec.get("count") is not None and row.fired >= spec["count"]
        rate = spec["rate"]
        fires = not exhausted and math.floor(calls * rate + 1e-9) > math.floor((calls - 1) * rate + 1e-9)
        self.store.update_fault_counters(row.id, calls, row.fired + (1 if fires else 0))
        return fires


class ItemPlanner:
    """Decides item faults for many items with one read and one write of the fault table."""

    def __init__(self, store: Store, rows: list[FaultRow]) -> None:
        self.store = store
        self.rows = rows
        self._changed: set[int] = set()

    def plan(self, *, custom_id: str | None, params_hash: str) -> ItemPlan:
        """``custom_id`` is None for ``POST /v1/messages``: only faults with a ``params_hash`` apply."""
        plan = ItemPlan()
        for row in self.rows:
            spec = row.spec
            if not _item_matches(spec, custom_id, params_hash):
                continue
            already_decided = plan.error is not None if spec["kind"] == "item_error" else plan.perturb
            if already_decided:
                continue
            exhausted = spec.get("count") is not None and row.fired >= spec["count"]
            fires = not exhausted and unit_interval(spec["seed"], custom_id or "", params_hash) < spec["rate"]
            row.calls += 1
            row.fired += 1 if fires else 0
            self._changed.add(row.id)
            if not fires:
                continue
            if spec["kind"] == "item_error":
                error_type = spec["error_type"]
                message = spec.get("message") or ITEM_MESSAGES.get(error_type, error_type)
                plan.error = ApiError(error_type, message)
            else:
                plan.perturb = spec.get("mode", "valid")
        return plan

    def save(self) -> None:
        for row in self.rows:
            if row.id in self._changed:
                self.store.update_fault_counters(row.id, row.calls, row.fired)
        self._changed.clear()


def _item_matches(spec: dict[str, Any], custom_id: str | None, params_hash: str) -> bool:
    if custom_id is None and spec.get("params_hash") is None:
        return False
    pattern = spec.get("custom_id")
    if pattern is not None and (custom_id is None or re.fullmatch(pattern, custom_id) is None):
        return False
    wanted_hash = spec.get("params_hash")
    return not (wanted_hash is not None and wanted_hash != params_hash)


def _status_error(spec: dict[str, Any]) -> ApiError:
    error_type = spec["error_type"]
    headers: dict[str, str] = {}
    retry_after = spec.get("retry_after")
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(float(retry_after))))
        headers["retry-after-ms"] = str(int(round(float(retry_after) * 1000)))
    if spec.get("should_retry") is not None:
        headers["x-should-retry"] = "true" if spec["should_retry"] else "false"
    message = spec.get("message") or DEFAULT_MESSAGES.get(error_type, "Emulated fault.")
    return ApiError(error_type, message, status=spec["status"], headers=headers)


def spend_limit_error(regain_on: str) -> ApiError:
    return ApiError("rate_limit_error", SPEND_LIMIT_MESSAGE.format(regain=regain_on), status=429,
                    details={"error_code": SPEND_LIMIT_ERROR_CODE})
