"""The account-wide budget for Message Batches calls, enforced on the HTTP client itself.

The API limits calls to its batch endpoints per minute for the whole account (about 50 at the
lowest tier), counting every create, list, retrieve, results, cancel and retry alike. With
hundreds of runs in flight, no process can keep that count alone, so each call first takes a
slot from one sliding window kept in the ledger (``nightshift.take_batch_api_call``). The slot is
taken in an httpx request hook rather than at each call site: a new call site cannot forget it,
and the SDK's own retries are counted too.

If the ledger cannot be reached the call goes ahead with a warning: the budget protects the
account, and the API's own 429 with ``retry-after`` (which the SDK honours) stays the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

BATCH_PATH = "/v1/messages/batches"
TAKE = "SELECT nightshift.take_batch_api_call(%s, %s)"
APPLICATION_NAME = "nightshift-batch-api-budget"


def is_batch_call(request: Any) -> bool:
    return BATCH_PATH in request.url.path


@dataclass(frozen=True)
class BatchApiBudget:
    """``limit`` batch-endpoint calls per ``window_seconds``, for all runs together."""

    limit: int
    window_seconds: float = 60.0

    @classmethod
    def configured(cls) -> BatchApiBudget | None:
        """The deployment's budget (``[nightshift] batch_api_rpm``); None when switched off (0)."""
        from nightshift.config import settings

        cfg = settings()
        return cls(cfg.batch_api_rpm, cfg.batch_api_window_seconds) if cfg.batch_api_rpm > 0 else None

    def pause(self, wait: float) -> float:
        """How long to sleep before asking again; jittered so waiters do not all wake together."""
        return wait + random.uniform(0, min(1.0, self.window_seconds / 20))


class _SyncHook:
    """Opens a ledger connection per slot it takes rather than keeping one: a client (and its
    hook) is made per task and dropped without a close, and a kept connection would live on
    until the garbage collector found it: hundreds of them when many runs share one process.
    The budget allows few calls a minute, so the extra connects cost nothing that matters."""

    def __init__(self, budget: BatchApiBudget, dsn: str) -> None:
        self.budget, self.dsn = budget, dsn

    def __call__(self, request: Any) -> None:
        if not is_batch_call(request):
            return
        while (wait := self._take()) > 0:
            time.sleep(self.budget.pause(wait))

    def _take(self) -> float:
        import psycopg

        try:
            with psycopg.connect(self.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
                return conn.execute(TAKE, (self.budget.limit, self.budget.window_seconds)).fetchone()[0]
        except psycopg.Error as exc:
            log.warning("batch API budget unavailable, calling without it: %r", exc)
            return 0.0


class _AsyncHook:
    def __init__(self, budget: BatchApiBudget, connect: Callable[[], AbstractAsyncContextManager]) -> None:
        self.budget, self.connect = budget, connect

    async def __call__(self, request: Any) -> None:
        if not is_batch_call(request):
            return
        while (wait := await self._take()) > 0:
            await asyncio.sleep(self.budget.pause(wait))

    async def _take(self) -> float:
        try:
            async with self.connect() as conn:
                cur = await conn.execute(TAKE, (self.budget.limit, self.budget.window_seconds))
                return (await cur.fetchone())[0]
        except Exception as exc:
            log.warning("batch API budget unavailable, calling without it: %r", exc)
            return 0.0


def limit_client(client: Any, budget: BatchApiBudget | None, dsn: str) -> Any:
    """Make every batch-endpoint call of a sync ``anthropic`` client take a slot first."""
    if budget is not None:
        _add_request_hook(client, _SyncHook(budget, dsn))
    return client


def limit_async_client(client: Any, budget: BatchApiBudget | None,
                       connect: Callable[[], AbstractAsyncContextManager]) -> Any:
    """The same for an async client; ``connect`` yields an autocommit async ledger connection."""
    if budget is not None:
        _add_request_hook(client, _AsyncHook(budget, connect))
    return client


def _add_request_hook(client: Any, hook: Callable) -> None:
    http = client._client  # the SDK's httpx client; event hooks are httpx's public extension point
    hooks = http.event_hooks
    hooks["request"] = [*hooks["request"], hook]
    http.event_hooks = hooks
