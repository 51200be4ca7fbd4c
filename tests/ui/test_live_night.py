"""A night watched while it runs: its page reloads itself until the night closes, and shows when the wait
last polled the API and when it polls next, as the trigger records them in the ledger."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

import pytest

from nightshift.batch.collect import collect
from nightshift.batch.finalize import finalize_run
from nightshift.batch.land import land_round
from nightshift.batch.ledger import ensure_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.deployment import get_workload
from nightshift.triggers import BatchesEndedTrigger
from tests.helpers import emulator_backend, seed
from tests.ui.support import TICKETS

pytestmark = pytest.mark.airflow

REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+)">')


def _trigger(batch_ids: list[str]) -> BatchesEndedTrigger:
    return BatchesEndedTrigger(conn_id="anthropic_default", batch_ids=batch_ids, deadline=time.time() + 600,
                               poll_interval=0.05, max_poll_interval=0.2, max_consecutive_failures=3,
                               db_conn_id="nightshift_db")


def _poll_times(app_db, run_pk: int) -> list[tuple[datetime | None, datetime | None]]:
    app_db.commit()
    return app_db.execute("SELECT last_polled_at, next_poll_at FROM nightshift.batches WHERE run_pk = %s",
                          (run_pk,)).fetchall()


async def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def _first_event(trigger: BatchesEndedTrigger) -> dict:
    async for event in trigger.run():
        return event.payload


async def _watch_while_waiting(dashboard, app_db, anthropic_conn, run_pk: int, batch_ids: list[str]):
    """While the trigger waits (the emulator's clock frozen): the poll times after its second poll,
    the night's JSON and page as the dashboard serves them then; then the batches end."""
    waiting = asyncio.create_task(_first_event(_trigger(batch_ids)))
    await _wait_for(lambda: all(t[0] and t[1] for t in _poll_times(app_db, run_pk)))
    first = _poll_times(app_db, run_pk)[0][0]
    await _wait_for(lambda: _poll_times(app_db, run_pk)[0][0] > first)
    night = (await asyncio.to_thread(dashboard.get, f"/api/nights/{run_pk}")).json()["night"]
    page = (await asyncio.to_thread(dashboard.get, f"/runs/{run_pk}")).text
    anthropic_conn.advance(3600)
    return first, night, page, await asyncio.wait_for(waiting, 30)


def test_a_waiting_night_shows_its_polls_and_reloads_itself_until_it_closes(dashboard, app_db, anthropic_conn):
    anthropic_conn.set_speed(0)  # frozen: the batches stay in progress until the test advances the clock
    anthropic_conn.configure(rate=10)
    workload = get_workload(TICKETS)
    seed(app_db, tickets=4)
    run = ensure_run(app_db, workload, dag_id="live", airflow_run_id="scheduled__live")
    collect(app_db, workload, run)
    backend = emulator_backend(anthropic_conn)
    batch_ids = submit_round(app_db, backend, workload, run, 0, Caps(max_requests=2)).batch_ids
    assert len(batch_ids) == 2

    # Before any poll: no times, and the open night's page already reloads itself.
    night = dashboard.get(f"/api/nights/{run.run_pk}").json()["night"]
    assert night["status"] == "running" and night["live"] is True
    assert night["last_poll_at"] is None and night["next_poll_at"] is None

    first_poll, night, page, event = asyncio.run(
        _watch_while_waiting(dashboard, app_db, anthropic_conn, run.run_pk, batch_ids))
    last, following = datetime.fromisoformat(night["last_poll_at"]), datetime.fromisoformat(night["next_poll_at"])
    assert first_poll < last < following, "the JSON shows the latest poll and the one after it"
    assert REFRESH.search(page) and REFRESH.search(page).group(1) == "10"
    assert "reloads itself every 10 s" in page
    assert re.search(r'<dd class="last-poll">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ', page)
    assert re.search(r'<dd class="next-poll">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ', page)

    # The batches ended: the trigger's last poll says no next one.
    assert event["status"] == "ended"
    assert all(last_polled and next_poll is None for last_polled, next_poll in _poll_times(app_db, run.run_pk))
    assert "no batch is being waited for" in dashboard.get(f"/runs/{run.run_pk}").text

    land_round(app_db, backend, workload, run, 0)
    finalize_run(app_db, run)
    night = dashboard.get(f"/api/nights/{run.run_pk}").json()["night"]
    assert night["status"] == "succeeded" and night["live"] is False
    page = dashboard.get(f"/runs/{run.run_pk}").text
    assert not REFRESH.search(page), "a closed night's page stays put"
    assert "reloads itself" not in page
