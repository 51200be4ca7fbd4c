"""The account-wide budget for batch-endpoint calls, kept in the ledger and taken by the backend before each call.

The API limits calls to its batch endpoints per minute for the whole account (about 50 at the
lowest tier), counting every create, list, retrieve, results, cancel and retry alike. With
hundreds of runs in flight, no process can keep that count alone, so each call first takes a
slot from one sliding window kept in the ledger (``nightshift.take_batch_api_call``). The backend
takes the slot (:meth:`LedgerCallBudget.take`) before each batch-endpoint call it makes, retries
included (the Anthropic backend in an httpx request hook): a new call site cannot forget it.

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

from nightshift.ledger.budget import take_batch_api_call, take_batch_api_call_async

log = logging.getLogger(__name__)

APPLICATION_NAME = "nightshift-batch-api-budget"


@dataclass(frozen=True)
class BatchApiBudget:
    """``limit`` batch-endpoint calls per ``window_seconds``, for all runs together."""

    limit: int
    window_seconds: float = 60.0

    @classmethod
    def of(cls, rpm: int, window_seconds: float = 60.0) -> BatchApiBudget | None:
        """A deployment's budget (``[nightshift] batch_api_rpm``); None when switched off (0)."""
        return cls(rpm, window_seconds) if rpm > 0 else None

    def pause(self, wait: float) -> float:
        """How long to sleep before asking again; jittered so waiters do not all wake together."""
        return wait + random.uniform(0, min(1.0, self.window_seconds / 20))


class LedgerCallBudget:
    """Takes slots for a sync backend. Opens a ledger connection per slot it takes rather than keeping one: a client (and its
    hook) is made per task and dropped without a close, and a kept connection would live on
    until the garbage collector found it: hundreds of them when many runs share one process.
    The budget allows few calls a minute, so the extra connects cost nothing that matters."""

    def __init__(self, budget: BatchApiBudget, dsn: str) -> None:
        self.budget, self.dsn = budget, dsn

    def take(self) -> None:
        """Return once a slot is taken (or the ledger cannot be reached)."""
        while (wait := self._take()) > 0:
            time.sleep(self.budget.pause(wait))

    def _take(self) -> float:
        import psycopg

        try:
            with psycopg.connect(self.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
                return take_batch_api_call(conn, self.budget.limit, self.budget.window_seconds)
        except psycopg.Error as exc:
            log.warning("batch API budget unavailable, calling without it: %r", exc)
            return 0.0


class AsyncLedgerCallBudget:
    """Takes slots for an async backend; ``connect`` yields an autocommit async ledger connection."""

    def __init__(self, budget: BatchApiBudget, connect: Callable[[], AbstractAsyncContextManager]) -> None:
        self.budget, self.connect = budget, connect

    async def take(self) -> None:
        while (wait := await self._take()) > 0:
            await asyncio.sleep(self.budget.pause(wait))

    async def _take(self) -> float:
        try:
            async with self.connect() as conn:
                return await take_batch_api_call_async(conn, self.budget.limit, self.budget.window_seconds)
        except Exception as exc:
            log.warning("batch API budget unavailable, calling without it: %r", exc)
            return 0.0
