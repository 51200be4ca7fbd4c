"""The README's "Watching it in the Airflow UI" steps against a real scheduler: unpausing a nightly DAG
(and nothing more) runs exactly one night, the latest interval's, scheduled by Airflow (``catchup=False``).
A trigger on top would be a second run (``test_browser.py`` does both, on purpose)."""

from __future__ import annotations

from datetime import datetime, timezone

# No other stack test unpauses this DAG: its first unpause in the session is what the README describes.
DAG_ID = "nightshift_batch_product_enrichment"


def test_unpausing_a_nightly_dag_runs_exactly_one_night(airflow_stack, app_db):
    airflow_stack.forget_runs(DAG_ID)
    airflow_stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    try:
        runs = airflow_stack.wait_until_idle(DAG_ID)
        dag = airflow_stack.api("GET", f"/dags/{DAG_ID}")
    finally:
        airflow_stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": True})

    assert [(r["run_type"], r["state"]) for r in runs] == [("scheduled", "success")]
    # ... and no further scheduled run is due: the next one is the next night's
    assert datetime.fromisoformat(dag["next_dagrun_run_after"]) > datetime.now(timezone.utc)
    app_db.commit()
    nights = app_db.execute("SELECT airflow_run_id, status FROM nightshift.runs WHERE dag_id = %s",
                            (DAG_ID,)).fetchall()
    assert nights == [(runs[0]["dag_run_id"], "empty")]  # nothing was queued: an empty night, once
