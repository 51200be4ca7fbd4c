"""The trigger that waits for a run's batches in the triggerer, holding no worker slot.

A trigger may be run more than once (after a triggerer restart it is rebuilt from
:meth:`serialize`), so everything it needs is in its kwargs, and its only writes are
idempotent: the latest observed state of each batch, copied into the ledger as it changes so
the dashboard is live while a night waits, and cancelling its batches when the task is killed.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from airflow.providers.anthropic.hooks.anthropic import AnthropicHook
from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from nightshift.batch.polling import (
    BatchSnapshot,
    all_ended,
    budgeted_interval,
    is_transient,
    next_interval,
    progress_line,
    stagger,
)


class BatchesEndedTrigger(BaseTrigger):
    """Poll every batch of a run until all have ended, the deadline passes, or polling keeps failing.

    :param deadline: wall-clock epoch seconds; wall-clock because the trigger may resume in
        another triggerer process, where a monotonic clock would mean nothing.
    """

    def __init__(self, *, conn_id: str, batch_ids: list[str], deadline: float, poll_interval: float,
                 max_poll_interval: float, max_consecutive_failures: int, db_conn_id: str | None = None) -> None:
        super().__init__()
        self.db_conn_id = db_conn_id
        self.conn_id = conn_id
        self.batch_ids = list(batch_ids)
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.max_consecutive_failures = max_consecutive_failures

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "nightshift.triggers.BatchesEndedTrigger",
            {
                "conn_id": self.conn_id,
                "batch_ids": self.batch_ids,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "max_consecutive_failures": self.max_consecutive_failures,
                "db_conn_id": self.db_conn_id,
            },
        )

    async def _client(self):
        """The provider's async client, its batch-endpoint calls held to the account-wide budget."""
        from nightshift.batch.budget import BatchApiBudget, limit_async_client

        client = await AnthropicHook(conn_id=self.conn_id).get_async_conn()
        budget = BatchApiBudget.configured() if self.db_conn_id else None
        return limit_async_client(client, budget, lambda: _ledger(self, self.db_conn_id))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await self._client()
        failures = 0
        last_seen: dict[str, BatchSnapshot] = {}
        async with client:
            await asyncio.sleep(min(stagger(self.batch_ids, await self._interval()), self._until_deadline()))
            while True:
                try:
                    snapshots = await self._poll(client)
                except Exception as exc:
                    failures += 1
                    if not is_transient(exc) or failures >= self.max_consecutive_failures:
                        yield TriggerEvent({"status": "error", "batch_ids": self.batch_ids,
                                            "message": f"polling failed ({failures} in a row): {exc!r}"})
                        return
                    delay = next_interval(self.poll_interval, failures, self.max_poll_interval)
                    self.log.warning("poll failed (%d in a row, retrying in %.1fs): %r", failures, delay, exc)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self.log.info("%s", progress_line(snapshots))
                changed = [s for s in snapshots if last_seen.get(s.id) != s]
                if changed and await self._record(changed):
                    last_seen.update((s.id, s) for s in changed)
                batches = [s.as_dict() for s in snapshots]
                if all_ended(snapshots):
                    yield TriggerEvent({"status": "ended", "batches": batches})
                    return
                if self._until_deadline() <= 0:
                    unfinished = [s.id for s in snapshots if not s.ended]
                    yield TriggerEvent({"status": "deadline", "batches": batches, "unfinished": unfinished})
                    return
                await asyncio.sleep(min(await self._interval(), self._until_deadline()))

    def _until_deadline(self) -> float:
        return max(0.0, self.deadline - time.time())

    async def _poll(self, client) -> list[BatchSnapshot]:
        """One list call for all of this run's batches (newest first); retrieve any it missed."""
        wanted = set(self.batch_ids)
        found: dict[str, BatchSnapshot] = {}
        if len(wanted) > 1 or self._active_batches > 1:
            page = await client.messages.batches.list(limit=min(1000, max(20, self._active_batches + 10)))
            found = {b.id: BatchSnapshot.of(b) for b in page.data if b.id in wanted}
        for batch_id in sorted(wanted - found.keys()):
            found[batch_id] = BatchSnapshot.of(await client.messages.batches.retrieve(batch_id))
        return [found[b] for b in self.batch_ids]

    _active_waits = 1
    _active_batches = 1

    async def _interval(self) -> float:
        """The base interval, stretched so every run waiting right now fits in the poll budget."""
        from nightshift.config import settings

        counts = await self._ledger_counts()
        if counts:
            self._active_waits, self._active_batches = counts
        cfg = settings()
        return budgeted_interval(self.poll_interval, self._active_waits, cfg.poll_budget_rpm,
                                 cfg.batch_api_window_seconds)

    async def _ledger_counts(self) -> tuple[int, int] | None:
        if not self.db_conn_id:
            return None
        try:
            async with _ledger(self, self.db_conn_id) as conn:
                cur = await conn.execute("SELECT count(DISTINCT run_pk), count(*) FROM nightshift.batches "
                                         "WHERE status = 'submitted'")
                waits, batches = await cur.fetchone()
            return max(1, waits), max(1, batches)
        except Exception as exc:
            self.log.warning("could not read the ledger for the poll budget: %r", exc)
            return None

    async def _record(self, snapshots: list[BatchSnapshot]) -> bool:
        """Copy observed batch states into the ledger; a DB hiccup never ends the wait."""
        if not self.db_conn_id:
            return False
        try:
            from nightshift.batch.ledger import RECORD_BATCH_STATE, batch_state_params

            async with _ledger(self, self.db_conn_id) as conn:
                for s in snapshots:
                    await conn.execute(RECORD_BATCH_STATE, batch_state_params(
                        s.id, s.processing_status, s.request_counts, s.ended_at))
            return True
        except Exception as exc:
            self.log.warning("could not record batch states in the ledger (the wait goes on): %r", exc)
            return False

    async def on_kill(self) -> None:
        """Cancel the batches when a user kills or clears the deferred task (Airflow 3.3+)."""
        client = await self._client()
        async with client:
            for batch_id in self.batch_ids:
                try:
                    batch = await client.messages.batches.retrieve(batch_id)
                    if batch.processing_status == "in_progress":
                        await client.messages.batches.cancel(batch_id)
                        self.log.info("on_kill: cancelled batch %s", batch_id)
                except Exception as exc:
                    self.log.warning("on_kill: could not cancel batch %s: %r", batch_id, exc)


class AdmissionTrigger(BaseTrigger):
    """Wait, in the triggerer, until the ledger shows room for ``needed`` more queued requests.

    Only reads the ledger; the submit task re-checks and reserves under a lock when it resumes.
    """

    def __init__(self, *, db_conn_id: str, needed: int, cap: int, poll_interval: float) -> None:
        super().__init__()
        self.db_conn_id, self.needed, self.cap, self.poll_interval = db_conn_id, needed, cap, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("nightshift.triggers.AdmissionTrigger",
                {"db_conn_id": self.db_conn_id, "needed": self.needed, "cap": self.cap,
                 "poll_interval": self.poll_interval})

    async def queued(self) -> int:
        """Requests queued across all runs, as the ledger knows them."""
        from nightshift.batch.submit import QUEUED

        async with _ledger(self, self.db_conn_id) as conn:
            return (await (await conn.execute(QUEUED)).fetchone())[0]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                queued = await self.queued()
                if queued + self.needed <= self.cap:
                    yield TriggerEvent({"status": "admitted", "queued": queued})
                    return
                self.log.info("%d requests queued; %d more would pass the cap of %d", queued, self.needed, self.cap)
            except Exception as exc:
                self.log.warning("could not read the ledger (will retry): %r", exc)
            await asyncio.sleep(self.poll_interval)


#: Ledger connections open at once per triggerer event loop. Hundreds of waits share one
#: triggerer; without a bound their polls would open hundreds of connections together.
LEDGER_CONNECTIONS_PER_LOOP = 8
_ledger_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@asynccontextmanager
async def _ledger(trigger: BaseTrigger, conn_id: str):
    """An async connection to the ledger; the Airflow connection is looked up once per trigger.

    The lookup may run the secrets backend through a shared worker thread: done on every poll
    by hundreds of triggers it would contend with the triggerer's own event loop.
    """
    import psycopg

    from nightshift.db import dsn_from_uri

    dsn = trigger.__dict__.get("_ledger_dsn")
    if dsn is None:
        connection = await BaseHook.aget_connection(conn_id)
        dsn = trigger.__dict__["_ledger_dsn"] = dsn_from_uri(connection.get_uri())
    loop = asyncio.get_running_loop()
    slots = _ledger_slots.get(loop)
    if slots is None:
        slots = _ledger_slots[loop] = asyncio.Semaphore(LEDGER_CONNECTIONS_PER_LOOP)
    async with slots, await psycopg.AsyncConnection.connect(dsn) as conn:
        yield conn
