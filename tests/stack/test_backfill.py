"""`airflow backfill create` against a real scheduler and triggerer, over several days."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from nightshift_dev import demo_data

DAG_ID = "nightshift_backfill_ticket_classification"
FIRST_DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)
DAYS = 5
PER_DAY = 4


def test_a_five_day_backfill_lands_every_interval_once(airflow_stack, app_db, emulator):
    for day in range(DAYS):
        # tickets created between 02:00 of day N and 02:00 of day N+1 belong to that night's interval
        demo_data.generate(app_db, tickets=PER_DAY, products=0, bad_every=0, enqueue=False, seed=day,
                           now=FIRST_DAY + timedelta(days=day + 1, hours=2))
    airflow_stack.forget_runs(DAG_ID)
    airflow_stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "backfill", "create", "--dag-id", DAG_ID,
         # the nightly intervals start at 02:00: these are the first and the last interval's start
         "--from-date", "2026-03-01T02:00:00+00:00", "--to-date", f"2026-03-0{DAYS}T02:00:00+00:00",
         "--max-active-runs", "3",
         "--dag-run-conf", json.dumps({"poll_interval_seconds": 0.5})],
        env=os.environ.copy(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]

    runs = airflow_stack.wait_for_runs(DAG_ID, DAYS, prefix="backfill__", timeout=600)
    assert [r["state"] for r in runs] == ["success"] * DAYS

    landed = app_db.execute("SELECT count(*), count(DISTINCT ticket_id) FROM app.ticket_classifications").fetchone()
    assert landed == (DAYS * PER_DAY, DAYS * PER_DAY)
    per_run = app_db.execute(
        "SELECT data_interval_start, requests, succeeded FROM nightshift.runs WHERE mode = 'interval' "
        "ORDER BY data_interval_start").fetchall()
    assert [(r[1], r[2]) for r in per_run] == [(PER_DAY, PER_DAY)] * DAYS, per_run
    for start, *_ in per_run:  # each run took exactly its own interval's tickets
        outside = app_db.execute(
            "SELECT count(*) FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) "
            "JOIN app.support_tickets t ON t.ticket_id::text = i.source_key "
            "WHERE r.data_interval_start = %s AND NOT (t.created_at >= r.data_interval_start "
            "AND t.created_at < r.data_interval_end)", (start,)).fetchone()[0]
        assert outside == 0


def test_the_readmes_redo_command_redoes_a_backfilled_date(airflow_stack, app_db, emulator):
    day = datetime(2026, 4, 1, 2, tzinfo=timezone.utc)
    demo_data.generate(app_db, tickets=PER_DAY, products=0, bad_every=0, enqueue=False, seed=11,
                       now=day + timedelta(days=1))
    airflow_stack.forget_runs(DAG_ID)
    airflow_stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

    def backfill(*extra: str, conf: dict) -> None:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "backfill", "create", "--dag-id", DAG_ID,
             "--from-date", day.isoformat(), "--to-date", day.isoformat(), *extra,
             "--dag-run-conf", json.dumps({"poll_interval_seconds": 0.5, **conf})],
            env=os.environ.copy(), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]

    def finished() -> list[str]:
        runs = airflow_stack.wait_for_runs(DAG_ID, 1, prefix="backfill__", timeout=600)
        # Airflow allows one open backfill per DAG: the scheduler closes it some time after its runs end
        deadline = time.monotonic() + 300
        while not all(b.get("completed_at") for b in
                      airflow_stack.api("GET", "/backfills", params={"dag_id": DAG_ID})["backfills"]):
            assert time.monotonic() < deadline, "the scheduler did not mark the backfill completed"
            time.sleep(2)
        return [r["state"] for r in runs]

    rows = "SELECT ticket_id, classified_at FROM app.ticket_classifications"

    backfill(conf={})
    assert finished() == ["success"]
    before = dict(app_db.execute(rows).fetchall())
    assert len(before) == PER_DAY
    app_db.commit()

    backfill("--reprocess-behavior", "completed", conf={"reprocess": True})  # as the README says
    assert finished() == ["success"]
    after = dict(app_db.execute(rows).fetchall())
    assert after.keys() == before.keys() and all(after[k] > before[k] for k in before)  # rows rewritten
    attempts = app_db.execute("SELECT requests, succeeded, status FROM nightshift.runs "
                              "WHERE mode = 'interval' AND data_interval_start = %s ORDER BY run_pk",
                              (day,)).fetchall()
    assert attempts == [(PER_DAY, PER_DAY, "succeeded")] * 2  # new requests: a second ledger run
