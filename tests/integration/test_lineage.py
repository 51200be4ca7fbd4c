"""OpenLineage: the events Airflow's own OpenLineage listener emits for a batch night, read back
from the provider's file transport, and the package without the provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from urllib.parse import urlparse

import jsonschema
import pytest

from nightshift.dag_ids import batch_dag_id, streaming_dag_id
from nightshift.paths import PROJECT_ROOT
from tests.dags.test_batch_dags import FAST, ledger_run, load_dag, task_states
from tests.helpers import seed

pytestmark = pytest.mark.airflow

WORKLOAD = "ticket_classification"


def ticket_dag():
    """The workload's batch DAG as the dag-processor parses it, and the workload its tasks run."""
    dag = load_dag("nightshift_batch.py", batch_dag_id(WORKLOAD))
    return dag, dag.get_task("collect").workload


@pytest.fixture
def lineage_events(tmp_path, monkeypatch):
    """Airflow's OpenLineage listener, registered with the task runner's listener manager (as the
    provider's plugin registers it) and writing every event it emits to a file; returns a reader.

    A fresh listener for each test: the provider's singleton keeps the client (and so the file) it
    was first built with."""
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    path = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "file", "log_file_path": str(path), "append": True}))
    # A forked emitter would share the in-process supervisor of dag.test(); a thread does not.
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    manager = get_listener_manager()
    configured = [p for p in manager.pm.get_plugins() if isinstance(p, OpenLineageListener)]
    for listener in configured:
        manager.pm.unregister(listener)
    ours = OpenLineageListener()
    manager.add_listener(ours)

    def read() -> list[dict]:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    yield read
    manager.pm.unregister(ours)
    for listener in configured:
        manager.add_listener(listener)


def completed(events: list[dict], dag_id: str, task_id: str) -> dict:
    found = [e for e in events if e["job"]["name"] == f"{dag_id}.{task_id}" and e["eventType"] == "COMPLETE"]
    assert len(found) == 1, f"{len(found)} COMPLETE events of {task_id}: {[e['job']['name'] for e in events]}"
    return found[0]


def names(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def provider_naming() -> tuple[str, str]:
    """The namespace and database the postgres provider's own hook gives the application database."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk import BaseHook

    info = PostgresHook(postgres_conn_id="nightshift_db").get_openlineage_database_info(
        BaseHook.get_connection("nightshift_db"))
    return f"{info.scheme}://{info.authority}", info.database


def test_a_night_reports_what_it_read_wrote_and_spent(airflow_db, app_db, app_dsn, anthropic_conn,
                                                       lineage_events):
    from nightshift.ledger.lineage import run_batch_ids
    from nightshift.lineage_facet import SCHEMA, SCHEMA_URL

    seed(app_db, tickets=30, bad_every=10)
    dag, workload = ticket_dag()

    dag_run = dag.test(run_conf={**FAST, "max_requests_per_batch": 12})

    assert str(dag_run.state) == "success", task_states(dag_run)
    run = ledger_run(app_db, dag_run)
    events = lineage_events()
    namespace, database = provider_naming()
    app = urlparse(app_dsn)
    assert (namespace, database) == (f"postgres://{app.hostname}:{app.port}", app.path.lstrip("/"))
    destination = (namespace, f"{database}.app.ticket_classifications")
    items = (namespace, f"{database}.nightshift.items")

    collect = completed(events, dag.dag_id, "collect")
    assert names(collect["inputs"]) == {(namespace, f"{database}.app.support_tickets"),
                                        (namespace, f"{database}.app.llm_requests")}
    assert names(collect["outputs"]) == {items}

    land = completed(events, dag.dag_id, "land")
    assert names(land["inputs"]) == {items} and names(land["outputs"]) == {destination}
    landed_rows = app_db.execute("SELECT count(*) FROM app.ticket_classifications").fetchone()[0]
    assert landed_rows == 27
    assert land["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == landed_rows

    finalize = completed(events, dag.dag_id, "finalize")
    assert names(finalize["outputs"]) == {destination}  # named as land names it, not by the Asset's URI
    facet = finalize["run"]["facets"]["nightshift"]
    jsonschema.validate(facet, SCHEMA)
    batch_ids = run_batch_ids(app_db, run.run_pk)
    assert len(batch_ids) == 3 and facet["batchIds"] == batch_ids
    assert anthropic_conn.stats()["batches_created"] == 3
    cost = app_db.execute("SELECT cost_usd FROM nightshift.run_costs WHERE run_pk = %s",
                          (run.run_pk,)).fetchone()[0]
    assert cost > 0
    assert facet == {
        "_producer": facet["_producer"], "_schemaURL": SCHEMA_URL,
        "runPk": run.run_pk, "workload": workload.name, "mode": "queue", "status": "succeeded",
        "batchIds": batch_ids, "requests": 30, "succeeded": 27, "failed": 3,
        "failedByReason": {"invalid_input": 3},
        "rowsLanded": landed_rows, "landedIn": destination[1], "rounds": 1,
        "costUsd": pytest.approx(float(cost)), "streamingUncachedUsd": facet["streamingUncachedUsd"],
    }
    assert facet["streamingUncachedUsd"] > facet["costUsd"]


def test_the_streaming_path_names_its_destination_by_its_asset(airflow_db, app_db, anthropic_conn,
                                                               lineage_events):
    """No Nightshift code reports the streaming task's lineage: Airflow names its outlet Asset through
    the postgres provider, so the workload's ``destination.asset.uri`` is the name the table gets."""
    seed(app_db, tickets=4)
    workload = ticket_dag()[1]
    dag = load_dag("nightshift_streaming.py", streaming_dag_id(WORKLOAD))

    assert str(dag.test().state) == "success"

    asset = urlparse(workload.asset_uri)
    assert asset.scheme == "postgres"
    stream = completed(lineage_events(), dag.dag_id, "stream_requests")
    database, schema, table = asset.path.lstrip("/").split("/")
    assert names(stream["outputs"]) == {(f"postgres://{asset.netloc}", f"{database}.{schema}.{table}")}


NO_PROVIDER = """
import sys
if {block}:
    # As if the openlineage extra were not installed: the client and the provider's extractors do not
    # import (the provider's package stays: Airflow's provider discovery reads its metadata).
    for name in ("openlineage", "airflow.providers.openlineage.extractors"):
        sys.modules[name] = None

from nightshift.batch.ledger import Run
from nightshift.lineage import openlineage_installed
from tests.dags.test_batch_dags import load_dag

dag = load_dag("nightshift_batch.py", "nightshift_batch_ticket_classification")
answers = {{}}
for task_id in ("collect", "land", "finalize"):
    task = dag.get_task(task_id)
    task.lineage_run = Run(7, "ticket_classification", dag.dag_id, "manual__x", None, "succeeded")
    answers[task_id] = repr(task.get_openlineage_facets_on_complete(None))
print(openlineage_installed(), answers["collect"] != "None", answers["land"] != "None", answers["finalize"])
"""


@pytest.mark.parametrize("installed", [False, True], ids=["without the provider", "with it"])
def test_the_package_works_without_the_openlineage_provider(installed):
    """Without the provider the DAG still builds and every lineage method answers None; the same
    script with the provider answers (finalize has nothing to report before it has run)."""
    script = textwrap.dedent(NO_PROVIDER.format(block=not installed))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1].split() == [str(installed), str(installed), str(installed), "None"]
