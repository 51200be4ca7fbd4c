"""Anthropic's first-party API as a batch backend: every SDK import and call of the batch path is here.

The client comes from outside (in a deployment, the provider's ``AnthropicHook`` builds it from
the Airflow connection; in tests, one pointed at the emulator), with its own retries and
timeouts; this module adds only what the batch path needs of it:

* the create call made once, with the SDK's retries off (a create that timed out may have
  created its batch; the core looks for it before trying again);
* the account-wide call budget, taken in an httpx request hook on every batch-endpoint call,
  so the SDK's own retries are counted too and no call site can forget it;
* results read line by line from the streaming response, each turned into an :class:`Outcome`;
* failures described in the core's terms (:class:`ApiFailure`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import anthropic
import msgspec
from anthropic.types.messages import MessageBatch

from nightshift.backends.base import (
    ApiFailure,
    AsyncCallBudget,
    BatchState,
    CallBudget,
    ErrorKind,
    Outcome,
    OutcomeKind,
    Poll,
    ProcessingStatus,
    RequestCounts,
    SpooledBody,
)
from nightshift.batch.jsonl import jsonl_lines

log = logging.getLogger(__name__)

NAME = "anthropic"
BATCH_PATH = "/v1/messages/batches"
CONSOLE_BATCH_URL = "https://console.anthropic.com/workspaces/default/batches/{batch_id}"
#: Statuses with which the API refuses a call before doing any of it.
REFUSED_BEFORE_WORK = (429, 529)
TRANSIENT_STATUSES = (408, 409, 429)
#: The 429 of the organization's monthly spend cap: a rate_limit_error no wait mends (rate-limits page).
SPEND_LIMIT_CODE = "enforced_spend_limit_reached"
#: Keyword arguments of the SDK's ``messages.count_tokens``; other params travel in ``extra_body``.
COUNT_TOKENS_KWARGS = frozenset({"messages", "model", "cache_control", "context_management", "mcp_servers",
                                 "output_config", "system", "thinking", "tool_choice", "tools"})
#: Params that only the Messages endpoint takes (limits, not content): not sent to count_tokens.
MESSAGES_ONLY = frozenset({"max_tokens", "stream", "metadata", "service_tier", "stop_sequences"})


def is_batch_call(request: Any) -> bool:
    return BATCH_PATH in request.url.path


def batch_state(batch: MessageBatch) -> BatchState:
    counts = batch.request_counts
    return BatchState(
        id=batch.id,
        processing_status=ProcessingStatus(batch.processing_status),
        request_counts=RequestCounts(counts.processing, counts.succeeded, counts.errored, counts.canceled,
                                     counts.expired),
        created_at=batch.created_at,
        ended_at=batch.ended_at,
        expires_at=batch.expires_at,
    )


_decode = msgspec.json.Decoder().decode


def outcome(line: bytes) -> Outcome:
    """One JSONL result line as the core's outcome."""
    try:
        record = _decode(line)
    except msgspec.DecodeError:  # JSON msgspec refuses (a lone surrogate escape) but json reads,
        record = json.loads(line)  # so the reply fails alone, as invalid_output, not the slice
    custom_id = record["custom_id"]
    result = record["result"]
    kind = result["type"]
    if kind == "succeeded":
        return Outcome(custom_id, OutcomeKind.SUCCEEDED, message=result["message"])
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or {}
        return Outcome(custom_id, OutcomeKind.ERRORED, error_type=error.get("type", "api_error"),
                       error_message=error.get("message"))
    if kind == "expired":
        return Outcome(custom_id, OutcomeKind.EXPIRED)
    return Outcome(custom_id, OutcomeKind.CANCELED)


def api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return str(error.get("message") or exc.message)


def is_spend_limit(exc: BaseException) -> bool:
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return getattr(exc, "status_code", None) == 429 and isinstance(details, dict) \
        and details.get("error_code") == SPEND_LIMIT_CODE


def origin(exc: anthropic.APIError) -> str | None:
    """Where a failed call went: scheme, host and port of its request (no credentials, path or query)."""
    try:
        url = exc.request.url
    except (AttributeError, RuntimeError):
        return None
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    port = f":{url.port}" if url.port is not None and url.port != default_port else ""
    return f"{url.scheme}://{url.host}{port}"


def _refused(exc: BaseException) -> bool:
    """A ``ConnectionRefusedError`` under the SDK's connection error: nothing listens at that host and
    port (a DNS failure or a timeout is not this)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ConnectionRefusedError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def failure(exc: BaseException) -> ApiFailure | None:
    """An SDK exception in the core's terms; None for anything that is not a failed API call."""
    if isinstance(exc, anthropic.APIConnectionError):  # timeouts included
        if _refused(exc):
            return ApiFailure(ErrorKind.UNREACHABLE, f"connection refused by {origin(exc)}", "connection_refused",
                              refused_before_work=True, url=origin(exc))
        return ApiFailure(ErrorKind.TRANSIENT, f"{exc} ({origin(exc)})", "connection_error", url=origin(exc))
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        if is_spend_limit(exc):
            kind = ErrorKind.SPEND_LIMIT
        elif status in TRANSIENT_STATUSES or status >= 500:
            kind = ErrorKind.TRANSIENT
        elif status == 400:
            kind = ErrorKind.INVALID_REQUEST
        elif status in (401, 403):
            kind = ErrorKind.AUTHENTICATION
        elif status == 404:
            kind = ErrorKind.NOT_FOUND
        else:
            kind = ErrorKind.OTHER
        return ApiFailure(kind, api_message(exc), str(error.get("type") or "api_error"), status, _retry_after(exc),
                          status in REFUSED_BEFORE_WORK, origin(exc))
    if isinstance(exc, anthropic.APIError):
        return ApiFailure(ErrorKind.OTHER, str(exc), "api_error", url=origin(exc))
    return None


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers["retry-after"])
    except (KeyError, ValueError, AttributeError):
        return None


def console_url(batch_id: str, pattern: str | None = None) -> str:
    """A batch's page in the Anthropic Console; ``pattern`` holds ``{batch_id}``."""
    return (pattern or CONSOLE_BATCH_URL).replace("{batch_id}", quote(batch_id, safe=""))


def _add_request_hook(client: Any, hook: Any) -> None:
    http = client._client  # the SDK's httpx client; event hooks are httpx's public extension point
    hooks = http.event_hooks
    hooks["request"] = [*hooks["request"], hook]
    http.event_hooks = hooks


class _Described:
    name = NAME

    def failure(self, exc: BaseException) -> ApiFailure | None:
        return failure(exc)

    def is_transient(self, exc: BaseException) -> bool:
        described = failure(exc)
        return described is not None and described.transient


class AnthropicBackend(_Described):
    """The Message Batches API (and the Messages and Models APIs the preflight and caching use)."""

    def __init__(self, client: anthropic.Anthropic, *, call_budget: CallBudget | None = None,
                 console_batch_url: str | None = None) -> None:
        self.client = client
        self.console_batch_url = console_batch_url
        if call_budget is not None:
            def take_slot(request: Any) -> None:
                if is_batch_call(request):
                    call_budget.take()

            _add_request_hook(client, take_slot)

    def create(self, body: SpooledBody) -> BatchState:
        once = self.client.with_options(max_retries=0)
        return batch_state(once.post(
            BATCH_PATH, cast_to=MessageBatch, content=body,
            options={"headers": {"Content-Type": "application/json", "Content-Length": str(body.size)}},
        ))

    def retrieve(self, batch_id: str) -> BatchState:
        return batch_state(self.client.messages.batches.retrieve(batch_id))

    def recent_batches(self) -> Iterator[BatchState]:
        for batch in self.client.messages.batches.list(limit=100):
            yield batch_state(batch)

    def cancel(self, batch_id: str) -> None:
        self.client.messages.batches.cancel(batch_id)

    @contextlib.contextmanager
    def results(self, batch_id: str) -> Iterator[Iterator[Outcome]]:
        with self.client.messages.batches.with_streaming_response.results(batch_id) as response:
            yield (outcome(line) for line in jsonl_lines(response.iter_bytes()))  # as the bytes arrive

    def console_url(self, batch_id: str) -> str:
        return console_url(batch_id, self.console_batch_url)

    def count_tokens(self, params: dict[str, Any]) -> int:
        kwargs = {key: value for key, value in params.items() if key in COUNT_TOKENS_KWARGS}
        extra = {key: value for key, value in params.items()
                 if key not in COUNT_TOKENS_KWARGS and key not in MESSAGES_ONLY}
        return self.client.messages.count_tokens(**kwargs, **({"extra_body": extra} if extra else {})).input_tokens

    def model_capabilities(self, model: str) -> dict[str, Any] | None:
        info = self.client.models.retrieve(model)
        return info.capabilities.model_dump(mode="json") if info.capabilities is not None else None

    def create_message(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.client.messages.create(**params).model_dump(mode="json")


class AsyncAnthropicBackend(_Described):
    """The calls a wait makes, over the SDK's async client."""

    def __init__(self, client: anthropic.AsyncAnthropic, *, call_budget: AsyncCallBudget | None = None) -> None:
        self.client = client
        if call_budget is not None:
            async def take_slot(request: Any) -> None:
                if is_batch_call(request):
                    await call_budget.take()

            _add_request_hook(client, take_slot)

    @classmethod
    async def pooled(cls, client: anthropic.AsyncAnthropic, connections: int, *,
                     call_budget: AsyncCallBudget | None = None) -> AsyncAnthropicBackend:
        """Over a copy of ``client`` holding at most ``connections`` HTTP connections (the SDK keeps
        100 alive, and its pool scans every one it holds on each request); ``client`` is closed."""
        limits = type(anthropic.DEFAULT_CONNECTION_LIMITS)(max_connections=connections,
                                                           max_keepalive_connections=connections)
        try:
            copied = client.copy(http_client=anthropic.DefaultAsyncHttpxClient(limits=limits))
        except Exception as exc:  # a client type that cannot be copied keeps its own pool
            log.debug("keeping the client's own connection pool: %r", exc)
            return cls(client, call_budget=call_budget)
        await client.close()
        return cls(copied, call_budget=call_budget)

    async def retrieve(self, batch_id: str) -> BatchState:
        return batch_state(await self.client.messages.batches.retrieve(batch_id))

    async def cancel(self, batch_id: str) -> None:
        await self.client.messages.batches.cancel(batch_id)

    async def batch_states(self, batch_ids: Sequence[str], *, active_batches: int = 1) -> Poll:
        """Retrieve a single batch; list several at once (newest first), paging on (``after_id``)
        while a page still misses more of them than one more call could, then retrieve what is
        left. The workspace's other batches (another team's) can crowd a page: the calls made
        are counted, for the wait to pace itself by.

        A single batch is never listed: a page covering every active batch of the account costs
        the API and the triggerer O(active batches) per poll, so N single-batch waits polling
        that way cost O(N²) per cycle (measured with 1,000 waits: 5.5 s of CPU per cycle, and
        the API fell behind until most waits never saw their batch end).
        """
        wanted = set(batch_ids)
        found: dict[str, BatchState] = {}
        calls = 0
        if len(wanted) > 1:
            limit = min(1000, max(20, active_batches + 10))
            after_id = None
            while True:
                page = await self.client.messages.batches.list(limit=limit,
                                                               **({"after_id": after_id} if after_id else {}))
                calls += 1
                found.update((b.id, batch_state(b)) for b in page.data if b.id in wanted)
                missing = len(wanted) - len(found)
                # another page is worth it only while it could save more than one retrieve
                if missing <= 1 or not page.has_more or not page.data or calls + 1 >= missing:
                    break
                after_id = page.data[-1].id
        for batch_id in sorted(wanted - found.keys()):
            found[batch_id] = await self.retrieve(batch_id)
            calls += 1
        return Poll([found[b] for b in batch_ids], calls)

    async def aclose(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> AsyncAnthropicBackend:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
