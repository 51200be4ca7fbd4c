"""What every API call goes through before its route: request id, auth, stats, batch rate limit, faults.

Written as plain ASGI (not Starlette's ``BaseHTTPMiddleware``) so streamed responses pass
through untouched and an exception inside a stream still drops the connection, which the
``cut`` fault depends on.
"""

from __future__ import annotations

import asyncio
import hmac
import re

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.errors import ApiError, error_body
from emulator.limits import BATCH_ENDPOINTS
from emulator.runtime import Emulator

_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), name)
    for method, pattern, name in (
        ("POST", r"/v1/messages/batches/?", "create"),
        ("GET", r"/v1/messages/batches/?", "list"),
        ("GET", r"/v1/messages/batches/[^/]+/results/?", "results"),
        ("POST", r"/v1/messages/batches/[^/]+/cancel/?", "cancel"),
        ("GET", r"/v1/messages/batches/[^/]+/?", "retrieve"),
        ("DELETE", r"/v1/messages/batches/[^/]+/?", "delete"),
        ("POST", r"/v1/messages/count_tokens/?", "count_tokens"),
        ("POST", r"/v1/messages/?", "messages"),
        ("GET", r"/v1/models/?", "models"),
        ("GET", r"/v1/models/[^/]+/?", "models"),
    )
)
CONTROL_PREFIX = "/_emulator"


def classify(method: str, path: str) -> str:
    """The endpoint name used by stats and faults; ``other`` for anything unrecognised."""
    if path.startswith(CONTROL_PREFIX):
        return "control"
    for route_method, pattern, name in _ROUTES:
        if method == route_method and pattern.fullmatch(path):
            return name
    return "other"


def presented_key(headers: Headers) -> str:
    """The API key a request carries (``x-api-key``, else ``Authorization: Bearer``), or ''."""
    if key := headers.get("x-api-key", "").strip():
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authentication_error(headers: Headers, required_key: str | None) -> ApiError | None:
    """401 without a key, or with another key than the one configured (when one is)."""
    key = presented_key(headers)
    if not key:
        return ApiError("authentication_error", "x-api-key header or Authorization: Bearer <key> is required")
    if required_key is not None and not hmac.compare_digest(key.encode(), required_key.encode()):
        return ApiError("authentication_error", "invalid x-api-key")
    return None


class ApiMiddleware:
    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if classify(scope["method"], scope["path"]) == "control":
            await self._handle(scope, receive, send)
            return
        self.emulator.in_flight += 1
        try:
            await self._handle(scope, receive, send)
        finally:
            self.emulator.in_flight -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = self.emulator.next_request_id()
        endpoint = classify(scope["method"], scope["path"])
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["endpoint"] = endpoint
        started = False
        hold_seconds = 0.0
        epoch = self.emulator.epoch

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if hold_seconds:  # the work is done; only the answer is late
                    await asyncio.sleep(hold_seconds)
                started = True
                MutableHeaders(scope=message)["request-id"] = request_id
                if endpoint != "control" and self.emulator.epoch == epoch:  # not a call from before a reset
                    count = self.emulator.store.count_request
                    await anyio.to_thread.run_sync(count, endpoint, message["status"])
            await send(message)

        if endpoint not in ("control", "other"):
            error = authentication_error(Headers(scope=scope), self.emulator.config.api_key)
            if error is not None:
                await self._send_error(error, request_id, scope, receive, send_with_headers)
                return
            if endpoint in BATCH_ENDPOINTS:  # in memory and cheap: no thread hop
                config = self.emulator.config
                limited = self.emulator.limits.admit(config.batch_rpm_limit, config.rate_window_seconds,
                                                     config.rate_enforcement_seconds)
                if limited is not None:  # rejected before faults and the route: nothing is processed
                    await self._send_error(limited, request_id, scope, receive, send_with_headers)
                    return
            plan = await anyio.to_thread.run_sync(self.emulator.faults.endpoint_plan, endpoint)
            if plan.delay_seconds:
                receive = await _received_in_full(scope, receive)
                await asyncio.sleep(plan.delay_seconds)
                if self.emulator.epoch != epoch:  # reset meanwhile: the state it was sent to is gone
                    error = ApiError("api_error", "The emulator was reset while this delayed call waited.")
                    await self._send_error(error, request_id, scope, receive, send_with_headers)
                    return
            hold_seconds = plan.hold_seconds
            if plan.error is not None:
                await self._send_error(plan.error, request_id, scope, receive, send_with_headers)
                return
            state["cut_after_lines"] = plan.cut_after_lines
            state["stall_seconds"] = plan.stall_seconds
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise  # mid-stream: let the server drop the connection
            error = ApiError("api_error", "Internal server error in the emulator.")
            await self._send_error(error, request_id, scope, receive, send_with_headers)

    @staticmethod
    async def _send_error(
        error: ApiError, request_id: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        response = error_response(error, request_id)
        await response(scope, receive, send)


async def _received_in_full(scope: Scope, receive: Receive) -> Receive:
    """Read the whole request body now and replay it to the route later.

    A delayed server already holds the request it is slow to act on. uvicorn hands an unread
    body to nobody once the client hangs up, so without this a client that times out would
    decide whether the late work happens at all.
    """
    try:
        body = await Request(scope, receive).body()
    except ClientDisconnect:
        return receive  # hung up mid-body: there is no whole request to act on
    replay: Message | None = {"type": "http.request", "body": body, "more_body": False}

    async def replaying() -> Message:
        nonlocal replay
        if replay is None:
            return await receive()
        message, replay = replay, None
        return message

    return replaying


def error_response(error: ApiError, request_id: str | None) -> JSONResponse:
    body = error_body(error, request_id)
    return JSONResponse(body, status_code=error.status, headers=error.headers)
