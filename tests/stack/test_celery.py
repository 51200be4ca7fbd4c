"""A night on the CeleryExecutor survives a worker killed while it lands.

Redis, the api-server, scheduler, dag-processor, triggerer and two Celery workers run as separate
processes (:mod:`tests.stack.celery_stack`). The emulator stalls the first results download
mid-stream, so the land task is provably in progress when the worker running it (named by the
task instance's hostname, its pid found in that worker's process tree) is killed with SIGKILL,
pool and task process included. Airflow must notice the silent task (heartbeat timeout), retry
it on the surviving worker, and the night must still land every request exactly once.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.chaos.invariants import assert_nothing_lost_or_doubled, fired
from tests.helpers import seed
from tests.stack.celery_stack import HEARTBEAT_TIMEOUT_SECONDS, WORKERS, wait_until

pytestmark = pytest.mark.stack

DAG_ID = "nightshift_batch_ticket_classification"
TICKETS = 12
PER_BATCH = 6  # two batches: the killed attempt had begun one and never reached the other
#: the first results download pauses after this many lines, long enough to kill the worker; a
#: landing slice is larger, so the killed attempt has written nothing
STALLED_AFTER_LINES = 3
STALL_SECONDS = 90
FINISHED = ("success", "failed")


def run_path(run_id: str) -> str:
    return f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"


def task_instance(api, run_id: str, task_id: str) -> dict | None:
    response = api.client.get(f"/api/v2{run_path(run_id)}/taskInstances/{task_id}")
    if response.status_code == 404:  # the scheduler has not created the run's task instances yet
        return None
    response.raise_for_status()
    return response.json()


def test_a_worker_killed_while_it_lands_then_every_request_lands_once(celery_stack, app_db, emulator):
    api = celery_stack.api
    seed(app_db, tickets=TICKETS)
    queued = sorted(r for (r,) in app_db.execute(
        "SELECT request_id FROM app.llm_requests WHERE workload = 'ticket_classification'"))
    assert len(queued) == TICKETS
    emulator.add_fault(kind="cut", endpoint="results", after_lines=STALLED_AFTER_LINES,
                       stall_seconds=STALL_SECONDS, count=1)

    api.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    conf = {"poll_interval_seconds": 0.5, "max_requests_per_batch": PER_BATCH}
    run = api.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]

    def landing_stalled() -> dict | None:
        land = task_instance(api, run_id, "land")
        if land and land["state"] == "running" and land["pid"] and fired(emulator) == [1]:
            return land
        return None

    land = wait_until("the land task running on a worker, its results download stalled", landing_stalled,
                      timeout=240, alive=celery_stack.assert_alive)
    assert land["try_number"] == 1 and land["max_tries"] >= 1, land
    killed = celery_stack.worker_holding(land["pid"])
    assert land["hostname"] == killed, f"the task instance names {land['hostname']}; its pid is {killed}'s"
    survivor = next(name for name in WORKERS if name != killed)
    celery_stack.kill_worker(killed)

    def finished() -> dict | None:
        run = api.api("GET", run_path(run_id))
        return run if run["state"] in FINISHED else None

    run = wait_until("the DAG run to finish after the kill", finished,
                     timeout=HEARTBEAT_TIMEOUT_SECONDS + 180,
                     alive=lambda: celery_stack.assert_alive(besides=(killed,)))
    assert run["state"] == "success", run

    land = task_instance(api, run_id, "land")
    assert (land["state"], land["try_number"], land["hostname"]) == ("success", 2, survivor), land
    tries = api.api("GET", f"{run_path(run_id)}/taskInstances/land/tries")["task_instances"]
    assert [(t["try_number"], t["hostname"], t["state"]) for t in tries] == [
        (1, killed, "failed"), (2, survivor, "success")], tries

    app_db.commit()
    run_pk, status = app_db.execute(
        "SELECT run_pk, status FROM nightshift.runs WHERE dag_id = %s AND airflow_run_id = %s",
        (DAG_ID, run_id)).fetchone()
    assert status == "succeeded"
    landed = sorted(r for (r,) in app_db.execute(
        "SELECT request_id FROM nightshift.items WHERE run_pk = %s AND status = 'succeeded'", (run_pk,)))
    assert landed == queued, "every queued request succeeded, each exactly once"
    rows, keys = app_db.execute(
        "SELECT count(*), count(DISTINCT ticket_id) FROM app.ticket_classifications").fetchone()
    assert rows == keys == TICKETS

    ledger_batches = [b for (b,) in app_db.execute(
        "SELECT backend_batch_id FROM nightshift.batches WHERE run_pk = %s", (run_pk,))]
    stats = emulator.stats()
    assert len(ledger_batches) == stats["batches_created"] == TICKETS // PER_BATCH, "a batch created twice"
    # the killed attempt's one stalled download, then the retry's download of each batch
    assert stats["endpoints"]["results"]["by_status"] == {"200": 1 + len(ledger_batches)}
    assert fired(emulator) == [1]
    assert_nothing_lost_or_doubled(app_db, emulator, run_pk)
