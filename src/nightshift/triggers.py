"""The trigger that waits for a run's batches in the triggerer, holding no worker slot.

A trigger may be run more than once (after a triggerer restart it is rebuilt from
:meth:`serialize`), so everything it needs is in its kwargs, and its only writes are
idempotent: the latest observed state of each batch, copied into the ledger as it changes so
the dashboard is live while a night waits, and cancelling its batches when the task is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from nightshift.backends.registry import DEFAULT_BACKEND
from nightshift.batch.permanent import api_failure
from nightshift.batch.polling import BatchSnapshot, WaitPolicy, WaitVerdict
from nightshift.ledger import batches as ledger_batches
from nightshift.ledger.status import CancelReason


def seconds_until(deadline: float) -> float:
    """Seconds left before a wall-clock deadline (epoch seconds), never negative.

    Wall-clock because a trigger may resume in another triggerer process, where a monotonic
    clock would mean nothing.
    """
    return max(0.0, deadline - time.time())


class BatchesEndedTrigger(BaseTrigger):
    """Poll every batch of a run until all have ended, the deadline passes, or polling keeps failing.

    :param deadline: wall-clock epoch seconds (see :func:`seconds_until`).
    :param backend: the workload's batch backend (absent from triggers serialised before it existed).
    """

    def __init__(self, *, conn_id: str, batch_ids: list[str], deadline: float, poll_interval: float,
                 max_poll_interval: float, max_consecutive_failures: int, db_conn_id: str | None = None,
                 backend: str = DEFAULT_BACKEND) -> None:
        super().__init__()
        self.db_conn_id = db_conn_id
        self.conn_id = conn_id
        self.backend = backend
        self.batch_ids = list(batch_ids)
        self.deadline = deadline
        self.policy = WaitPolicy(poll_interval, max_poll_interval, max_consecutive_failures)

    @property
    def poll_interval(self) -> float:
        return self.policy.poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "nightshift.triggers.BatchesEndedTrigger",
            {
                "conn_id": self.conn_id,
                "batch_ids": self.batch_ids,
                "deadline": self.deadline,
                "poll_interval": self.policy.poll_interval,
                "max_poll_interval": self.policy.max_poll_interval,
                "max_consecutive_failures": self.policy.max_consecutive_failures,
                "db_conn_id": self.db_conn_id,
                "backend": self.backend,
            },
        )

    def _call_budget(self):
        """The account-wide budget the backend's batch-endpoint calls are held to (None: off)."""
        from nightshift.batch.budget import AsyncLedgerCallBudget, BatchApiBudget
        from nightshift.config import settings

        cfg = settings()
        budget = BatchApiBudget.of(cfg.batch_api_rpm, cfg.batch_api_window_seconds) if self.db_conn_id else None
        return AsyncLedgerCallBudget(budget, lambda: _budget_ledger(self, self.db_conn_id)) if budget else None

    async def _backend(self, pool_connections: int | None = None):
        from nightshift.hooks import async_batch_backend

        return await async_batch_backend(self.backend, self.conn_id, call_budget=self._call_budget(),
                                         pool_connections=pool_connections)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        failures = 0
        last_seen: dict[str, BatchSnapshot] = {}
        async with _shared_backend(self) as backend:
            await asyncio.sleep(min(self.policy.stagger(self.batch_ids, await self._interval()),
                                    seconds_until(self.deadline)))
            while True:
                try:
                    snapshots = await self.poll_once(backend)
                except Exception as exc:
                    failures += 1
                    final = api_failure(backend.failure(exc), reached=True, conn_id=self.conn_id)
                    if final is not None:  # the sensor fails at once, no task retry
                        yield TriggerEvent({"status": "error", "batch_ids": self.batch_ids, "permanent": True,
                                            "message": str(final)})
                        return
                    delay = self.policy.retry_delay(failures, backend.is_transient(exc))
                    if delay is None:
                        yield TriggerEvent({"status": "error", "batch_ids": self.batch_ids,
                                            "message": f"polling failed ({failures} in a row): {exc!r}"})
                        return
                    self.log.warning("poll failed (%d in a row, retrying in %.1fs): %r", failures, delay, exc)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                polled_at = time.time()
                self.log.info("%s", self.policy.progress_line(snapshots))
                changed = [s for s in snapshots if last_seen.get(s.id) != s]
                if changed and await self.record_states(changed):
                    last_seen.update((s.id, s) for s in changed)
                verdict = self.policy.verdict(snapshots, now=polled_at, deadline=self.deadline)
                if verdict is WaitVerdict.ENDED:
                    await self.record_poll(polled_at, None)
                    yield TriggerEvent({"status": "ended", "batches": [s.as_dict() for s in snapshots]})
                    return
                if verdict is WaitVerdict.DEADLINE:
                    await self.record_poll(polled_at, None)
                    yield TriggerEvent({"status": "deadline", "batches": [s.as_dict() for s in snapshots],
                                        "unfinished": self.policy.unfinished(snapshots)})
                    return
                # the budget counts calls, not polls: a poll that took three calls waits three intervals
                paced = await self._interval() * max(1, self.calls_last_poll)
                delay = min(paced, seconds_until(self.deadline))
                await self.record_poll(polled_at, time.time() + delay)
                await asyncio.sleep(delay)

    async def poll_once(self, backend) -> list[BatchSnapshot]:
        """The run's batches in as few calls as the backend can (``batch_states``, sized by the
        deployment's count of active batches). ``calls_last_poll`` says what it cost: the
        workspace's other batches (another team's) can crowd a list page, and the wait paces
        itself by the calls it really made."""
        poll = await backend.batch_states(self.batch_ids, active_batches=self._active_batches)
        self.calls_last_poll = poll.calls
        return [BatchSnapshot.of(state) for state in poll.states]

    calls_last_poll = 1

    _active_waits = 1
    _active_batches = 1

    async def _interval(self) -> float:
        """The base interval, stretched so every run waiting right now fits in the poll budget."""
        counts = await self._ledger_counts()
        if counts:
            self._active_waits, self._active_batches = counts
        return self.policy.interval(self._active_waits, *self._poll_budget)

    @functools.cached_property
    def _poll_budget(self) -> tuple[float, float]:
        """``(poll_budget_rpm, batch_api_window_seconds)``, read once per trigger: a process's configuration
        does not change under it, and reading every [nightshift] option through Airflow's configuration on
        each poll was the largest part of the trigger's own CPU per poll (``nightshift bench --only wait``).
        """
        from nightshift.config import settings

        cfg = settings()
        return cfg.poll_budget_rpm, cfg.batch_api_window_seconds

    async def _ledger_counts(self) -> tuple[int, int] | None:
        """How many runs and batches are waiting, across the deployment (the poll budget's divisor).

        The answer is the same for every trigger, so the triggers of one triggerer share it: one
        query per ``poll_interval`` for the whole process, not one connection and query per trigger
        per poll (1,000 waits: 1,000 connections a cycle).
        """
        if not self.db_conn_id:
            return None
        return await _shared_ledger_counts(self, max(1.0, self.poll_interval))

    async def _query_ledger_counts(self) -> tuple[int, int] | None:
        try:
            async with _ledger(self, self.db_conn_id) as conn:
                waits, batches = await ledger_batches.in_flight_counts(conn)
            return max(1, waits), max(1, batches)
        except Exception as exc:
            self.log.warning("could not read the ledger for the poll budget: %r", exc)
            return None

    async def record_states(self, snapshots: list[BatchSnapshot]) -> bool:
        """Copy observed batch states into the ledger; a DB hiccup never ends the wait."""
        if not self.db_conn_id:
            return False
        try:
            async with _ledger(self, self.db_conn_id) as conn:
                for s in snapshots:
                    await ledger_batches.record_batch_state_async(
                        conn, s.id, s.processing_status, s.request_counts, s.ended_at)
            return True
        except Exception as exc:
            self.log.warning("could not record batch states in the ledger (the wait goes on): %r", exc)
            return False

    async def record_poll(self, polled_at: float, next_poll_at: float | None) -> None:
        """When this wait polled and when it polls next (the night page shows both). The waits of one
        triggerer write theirs together (:func:`_queue_poll_times`); the last poll of a wait, now."""
        if not self.db_conn_id:
            return
        from datetime import datetime, timezone

        def at(epoch: float | None) -> datetime | None:
            return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)

        times = {b: (at(polled_at), at(next_poll_at)) for b in self.batch_ids}
        if next_poll_at is None:
            await _write_poll_times(self, times)
        else:
            _queue_poll_times(self, times)

    async def on_kill(self) -> None:
        """Cancel the batches when a user kills or clears the deferred task (Airflow 3.3+).

        The cancel is recorded on each batch (``killed``): what it had processed is landed when
        the task is retried, and what the cancel stopped goes to the next round.
        """
        from nightshift.backends.base import ProcessingStatus

        backend = await self._backend()
        cancelled = []
        try:
            for batch_id in self.batch_ids:
                try:
                    batch = await backend.retrieve(batch_id)
                    if batch.processing_status is ProcessingStatus.IN_PROGRESS:
                        await backend.cancel(batch_id)
                        cancelled.append(batch_id)
                        self.log.info("on_kill: cancelled batch %s", batch_id)
                except Exception as exc:
                    self.log.warning("on_kill: could not cancel batch %s: %r", batch_id, exc)
        finally:
            await backend.aclose()
        if cancelled and self.db_conn_id:
            try:
                async with _ledger(self, self.db_conn_id) as conn:
                    await ledger_batches.mark_cancelled_async(conn, cancelled, CancelReason.KILLED)
            except Exception as exc:
                self.log.warning("on_kill: could not record the cancel of %s: %r", ", ".join(cancelled), exc)


class AdmissionTrigger(BaseTrigger):
    """Wait, in the triggerer, until the ledger shows room for ``needed`` more queued requests.

    Only reads the ledger; the submit task re-checks and reserves under a lock when it resumes.
    When the run's own earlier batches (``own_batch_ids``) hold part of the queue, nobody else
    will see them end (the run's wait task starts only after its submit), so this trigger polls
    them itself and records their end: a night larger than the cap then goes through in turns
    instead of waiting for itself forever.

    It stops waiting at the run's ``deadline`` (wall-clock epoch seconds): in a long backfill
    room may not come for hours, and a run past its deadline submits nothing more anyway.
    """

    def __init__(self, *, db_conn_id: str, needed: int, cap: int, poll_interval: float,
                 conn_id: str | None = None, own_batch_ids: list[str] | None = None,
                 deadline: float = math.inf, backend: str = DEFAULT_BACKEND) -> None:
        super().__init__()
        self.db_conn_id, self.needed, self.cap, self.poll_interval = db_conn_id, needed, cap, poll_interval
        self.conn_id, self.own_batch_ids, self.deadline = conn_id, list(own_batch_ids or []), deadline
        self.backend = backend

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("nightshift.triggers.AdmissionTrigger",
                {"db_conn_id": self.db_conn_id, "needed": self.needed, "cap": self.cap,
                 "poll_interval": self.poll_interval, "conn_id": self.conn_id,
                 "own_batch_ids": self.own_batch_ids, "deadline": self.deadline, "backend": self.backend})

    async def queued(self) -> int:
        """Requests queued across all runs, as the ledger knows them."""
        async with _ledger(self, self.db_conn_id) as conn:
            return await ledger_batches.queued_requests_async(conn)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            if seconds_until(self.deadline) <= 0:
                yield TriggerEvent({"status": "deadline"})
                return
            try:
                queued = await self.queued()
                if queued + self.needed <= self.cap:
                    yield TriggerEvent({"status": "admitted", "queued": queued})
                    return
                self.log.info("%d requests queued; %d more would pass the cap of %d", queued, self.needed, self.cap)
                if self.own_batch_ids and self.conn_id:
                    if await self.record_own_batches_ended():
                        continue
            except Exception as exc:
                self.log.warning("could not read the ledger or the run's own batches (will retry): %r", exc)
            await asyncio.sleep(min(self.poll_interval, seconds_until(self.deadline)))

    async def record_own_batches_ended(self) -> bool:
        """Poll the run's own batches as their wait would, record their states; True if one ended."""
        watcher = BatchesEndedTrigger(conn_id=self.conn_id, batch_ids=self.own_batch_ids, deadline=math.inf,
                                      poll_interval=self.poll_interval, max_poll_interval=self.poll_interval,
                                      max_consecutive_failures=1, db_conn_id=self.db_conn_id, backend=self.backend)
        async with _shared_backend(watcher) as backend:
            snapshots = await watcher.poll_once(backend)
        ended = {s.id for s in snapshots if s.ended}
        if not ended or not await watcher.record_states(snapshots):
            return False
        self.own_batch_ids = [b for b in self.own_batch_ids if b not in ended]
        return True


#: A shared backend is handed to new waits for this long; after that they get a fresh one (so a
#: rotated key or a moved gateway is picked up), and the old one closes with its last wait.
CLIENT_MAX_AGE_SECONDS = 600.0
_backends_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _shared_backend(trigger: BatchesEndedTrigger):
    """One backend (and SDK client) per backend and connection id for all the waits of a triggerer
    (per event loop).

    Each client holds an HTTP connection pool and an SSL context: built per wait, 1,000 waits
    cost 41 s of CPU to start and about 1 GB of memory, and every poll opened a new connection.
    Shared, the waits reuse a few pooled connections.
    """
    loop = asyncio.get_running_loop()
    shared = _backends_by_loop.setdefault(loop, {})
    key = (trigger.backend, trigger.conn_id)
    entry = shared.get(key)
    if entry is None or time.monotonic() - entry["created"] > CLIENT_MAX_AGE_SECONDS:
        entry = shared[key] = {"backend": asyncio.ensure_future(trigger._backend(POOL_CONNECTIONS)), "users": 0,
                               "created": time.monotonic()}
    entry["users"] += 1
    try:
        backend = await asyncio.shield(entry["backend"])
    except BaseException:
        await _release_backend(shared, key, entry)
        raise
    try:
        yield backend
    finally:
        await _release_backend(shared, key, entry)


#: Connections one shared client keeps. Polls are spread over the interval, so few are in
#: flight at once; the HTTP pool scans every connection it holds on each request (with the
#: SDK's default of 100 kept alive, 18 ms of CPU per poll at 300 waits).
POOL_CONNECTIONS = 16


async def _release_backend(shared: dict, key: tuple[str, str], entry: dict) -> None:
    entry["users"] -= 1
    if entry["users"]:
        return
    if shared.get(key) is entry:
        del shared[key]
    future = entry["backend"]
    if future.done() and not future.cancelled() and future.exception() is None:
        await future.result().aclose()


#: Poll times wait at most this long to be written with those of the loop's other waits: one
#: statement a second for the whole triggerer, not one per poll (1,000 waits: 1,000 statements a cycle).
POLL_TIMES_FLUSH_SECONDS = 1.0
_poll_times_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _queue_poll_times(trigger: BatchesEndedTrigger, times: dict) -> None:
    shared = _poll_times_by_loop.setdefault(asyncio.get_running_loop(), {})
    entry = shared.setdefault(trigger.db_conn_id, {"times": {}, "flush": None})
    entry["times"].update(times)
    if entry["flush"] is None:
        entry["flush"] = asyncio.ensure_future(_flush_poll_times(trigger, entry))


async def _flush_poll_times(trigger: BatchesEndedTrigger, entry: dict) -> None:
    await asyncio.sleep(POLL_TIMES_FLUSH_SECONDS)
    times, entry["times"], entry["flush"] = entry["times"], {}, None
    await _write_poll_times(trigger, times)


async def _write_poll_times(trigger: BatchesEndedTrigger, times: dict) -> None:
    """One statement on the loop's shared autocommit connection; a DB hiccup is only logged."""
    try:
        async with _budget_ledger(trigger, trigger.db_conn_id) as conn:
            await ledger_batches.record_polls_async(conn, times)
    except Exception as exc:
        trigger.log.warning("could not record poll times in the ledger (the waits go on): %r", exc)


_ledger_counts_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _shared_ledger_counts(trigger: BatchesEndedTrigger, max_age: float) -> tuple[int, int] | None:
    """The ledger counts, read at most once per ``max_age`` seconds per event loop and ledger.

    Concurrent callers wait for the one query in flight instead of sending their own. A failed
    read is not kept: the next caller tries again.
    """
    loop = asyncio.get_running_loop()
    shared = _ledger_counts_by_loop.setdefault(loop, {})
    read_at, pending = shared.get(trigger.db_conn_id, (-math.inf, None))
    if pending is None or (pending.done() and time.monotonic() - read_at >= max_age):
        read_at, pending = time.monotonic(), asyncio.ensure_future(trigger._query_ledger_counts())
        shared[trigger.db_conn_id] = (read_at, pending)
    counts = await asyncio.shield(pending)
    if counts is None and shared.get(trigger.db_conn_id, (None, None))[1] is pending:
        del shared[trigger.db_conn_id]
    return counts


#: Ledger connections open at once per triggerer event loop. Hundreds of waits share one
#: triggerer; without a bound their polls would open hundreds of connections together.
LEDGER_CONNECTIONS_PER_LOOP = 8
_ledger_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _ledger_dsn(trigger: BaseTrigger, conn_id: str) -> str:
    """The ledger's DSN; the Airflow connection is looked up once per trigger.

    The lookup may run the secrets backend through a shared worker thread: done on every poll
    by hundreds of triggers it would contend with the triggerer's own event loop.
    """
    from nightshift.db import dsn_from_uri

    dsn = trigger.__dict__.get("_ledger_dsn")
    if dsn is None:
        connection = await BaseHook.aget_connection(conn_id)
        dsn = trigger.__dict__["_ledger_dsn"] = dsn_from_uri(connection.get_uri())
    return dsn


@contextlib.asynccontextmanager
async def _ledger(trigger: BaseTrigger, conn_id: str):
    """An async connection to the ledger, one of at most ``LEDGER_CONNECTIONS_PER_LOOP``."""
    import psycopg

    dsn = await _ledger_dsn(trigger, conn_id)
    loop = asyncio.get_running_loop()
    slots = _ledger_slots.get(loop)
    if slots is None:
        slots = _ledger_slots[loop] = asyncio.Semaphore(LEDGER_CONNECTIONS_PER_LOOP)
    async with slots, await psycopg.AsyncConnection.connect(dsn) as conn:
        yield conn


#: Per event loop: a lock for opening, and the open slot-taking connection per ledger DSN.
_budget_connections: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _budget_ledger(trigger: BaseTrigger, conn_id: str):
    """The one autocommit ledger connection of this event loop that takes budget slots (and records
    poll times: :func:`_write_poll_times`).

    A slot is one short statement before every batch-endpoint call; a connection opened for
    each cost the triggerer more CPU than the API call itself (measured at 1,000 waits: 8.9 ms
    a poll against 4.0 ms for the SDK alone). psycopg runs the statements of concurrent
    callers one after another on the shared connection; a broken one is replaced.
    """
    import psycopg

    dsn = await _ledger_dsn(trigger, conn_id)
    loop = asyncio.get_running_loop()
    shared = _budget_connections.get(loop)
    if shared is None:
        shared = _budget_connections[loop] = (asyncio.Lock(), {})
    opening, connections = shared
    conn = connections.get(dsn)
    if conn is None or conn.closed:  # the lock only to open one: taken per slot it cost more than the check
        async with opening:
            conn = connections.get(dsn)
            if conn is None or conn.closed:
                conn = connections[dsn] = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        yield conn
    except psycopg.OperationalError:
        if connections.get(dsn) is conn:
            del connections[dsn]
        await conn.close()
        raise
