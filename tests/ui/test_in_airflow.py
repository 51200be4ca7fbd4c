"""The dashboard inside Airflow's real API server app: mounted by the plugin, behind Airflow's login,
linked from the tasks of a real batch night (``dag.test()`` against the emulator)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from nightshift.dag_ids import batch_dag_id
from tests.helpers import seed

pytestmark = pytest.mark.airflow

FAST = {"poll_interval_seconds": 0.2, "max_requests_per_batch": 7}
CONSOLE = "https://console.example/batches/{batch_id}"


@pytest.fixture(scope="module")
def api_server(airflow_db):
    """Airflow's API server app (core API, UI API, auth manager and plugins), as ``airflow api-server`` builds it."""
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app(apps="core")) as client:
        yield client


def login(api_server) -> str:
    """A token from Airflow's own login endpoint, with the test profile's admin/admin."""
    response = api_server.post("/auth/token", json={"username": "admin", "password": "admin"})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def test_the_api_server_mounts_the_dashboard_behind_its_login(api_server, app_db):
    api_server.cookies.clear()
    assert api_server.get("/nightshift/api/nights").status_code == 401
    anonymous = api_server.get("/nightshift/", follow_redirects=False)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/auth/login?next=")

    token = login(api_server)
    bearer = {"Authorization": f"Bearer {token}"}
    assert api_server.get("/nightshift/api/nights", headers=bearer).json()["ledger_present"] is True
    page = api_server.get("/nightshift/", headers=bearer)
    assert page.status_code == 200 and "No nights yet" in page.text
    assert 'href="/nightshift/failures"' in page.text  # links know where the app is mounted

    # The UI's session cookie opens it too: the same login as the Airflow UI.
    api_server.cookies.set("_token", token)
    try:
        assert api_server.get("/nightshift/failures").status_code == 200
    finally:
        api_server.cookies.clear()


def test_the_api_server_lists_the_plugin(api_server):
    token = login(api_server)
    plugins = api_server.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "nightshift"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/nightshift"
    assert {(v["destination"], v["url_route"]) for v in plugin["external_views"]} == {
        ("nav", "nightshift"), ("dag_run", "nightshift-run")}
    assert len(plugin["operator_extra_links"]) == 2


def run_batch_dag(pg_cluster):
    from airflow.dag_processing.dagbag import DagBag

    from nightshift.paths import PROJECT_ROOT

    dag_id = batch_dag_id("ticket_classification")
    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "nightshift_batch.py")).get_dag(dag_id)
    dag_run = dag.test(run_conf=FAST)
    assert str(dag_run.state) == "success"
    return dag_run


def task_links(api_server, token, dag_run, task_id) -> dict:
    response = api_server.get(
        f"/api/v2/dags/{dag_run.dag_id}/dagRuns/{quote(dag_run.run_id, safe='')}/taskInstances/{task_id}/links",
        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()["extra_links"]


def round_batches(conn, dag_run, round_: int) -> list[str]:
    return [b for (b,) in conn.execute(
        "SELECT b.backend_batch_id FROM nightshift.batches b JOIN nightshift.runs r USING (run_pk) "
        "WHERE r.dag_id = %s AND r.airflow_run_id = %s AND b.round = %s ORDER BY b.seq",
        (dag_run.dag_id, dag_run.run_id, round_))]


def test_task_links_of_a_real_night_lead_to_the_console_and_the_dashboard(
        api_server, app_db, anthropic_conn, pg_cluster, monkeypatch):
    """As the plugin registers them today: computed live by the API server from XCom."""
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__CONSOLE_BATCH_URL", CONSOLE)
    seed(app_db, tickets=16, bad_every=5)
    dag_run = run_batch_dag(pg_cluster)
    batches = round_batches(app_db, dag_run, 0)
    assert len(batches) > 1  # the round was split: the link opens its first batch
    token = login(api_server)
    run_page = f"/nightshift/airflow-run?dag_id={dag_run.dag_id}&run_id={quote(dag_run.run_id, safe='')}"

    submit = task_links(api_server, token, dag_run, "submit")
    assert submit == {"Anthropic Console": CONSOLE.format(batch_id=batches[0]), "Nightshift run": run_page}
    assert task_links(api_server, token, dag_run, "wait")["Anthropic Console"] == CONSOLE.format(batch_id=batches[0])
    assert task_links(api_server, token, dag_run, "collect") == {"Nightshift run": run_page}
    # A round with nothing to retry was skipped: its console link is disabled, not an error.
    assert task_links(api_server, token, dag_run, "retry_1.submit")["Anthropic Console"] is None

    # The run link resolves to the night's page, which lists every batch with its console link.
    bearer = {"Authorization": f"Bearer {token}"}
    landing = api_server.get(run_page, headers=bearer, follow_redirects=False)
    assert landing.status_code == 303
    assert re.fullmatch(r"/nightshift/runs/\d+", landing.headers["location"])
    html = api_server.get(landing.headers["location"], headers=bearer).text
    for batch_id in batches:
        assert f'href="{CONSOLE.format(batch_id=batch_id)}"' in html


def stored_links(pg_cluster, dag_run) -> dict[tuple[str, str], str]:
    with psycopg.connect(pg_cluster.dsn("airflow")) as conn:
        rows = conn.execute("SELECT task_id, key, value FROM xcom WHERE dag_id = %s AND run_id = %s "
                            "AND key LIKE '\\_link\\_%%'", (dag_run.dag_id, dag_run.run_id)).fetchall()
    return {(task, key): decode(value) for task, key, value in rows}


def decode(value):
    """An XCom value as stored: JSON text, or already decoded by the driver (jsonb)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def test_links_declared_on_the_operators_are_stored_by_the_worker(
        api_server, app_db, anthropic_conn, pg_cluster, monkeypatch):
    """The wiring operators.py is to add: the task runner calls get_link when a task ends and stores the URL."""
    from nightshift.operators import CollectRequestsOperator, SubmitBatchesOperator
    from nightshift.sensors import BatchesEndedSensor
    from nightshift.ui.links import AnthropicConsoleBatchLink, NightshiftRunLink

    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__CONSOLE_BATCH_URL", CONSOLE)
    for operator in (SubmitBatchesOperator, BatchesEndedSensor):
        monkeypatch.setattr(operator, "operator_extra_links", (AnthropicConsoleBatchLink(), NightshiftRunLink()))
    monkeypatch.setattr(CollectRequestsOperator, "operator_extra_links", (NightshiftRunLink(),))
    seed(app_db, tickets=9)
    dag_run = run_batch_dag(pg_cluster)
    (batch,) = round_batches(app_db, dag_run, 0)[:1]
    run_page = f"/nightshift/airflow-run?dag_id={dag_run.dag_id}&run_id={quote(dag_run.run_id, safe='')}"

    stored = stored_links(pg_cluster, dag_run)

    assert stored[("submit", "_link_AnthropicConsoleBatchLink")] == CONSOLE.format(batch_id=batch)
    assert stored[("wait", "_link_AnthropicConsoleBatchLink")] == CONSOLE.format(batch_id=batch)
    assert stored[("submit", "_link_NightshiftRunLink")] == run_page
    assert stored[("collect", "_link_NightshiftRunLink")] == run_page
    # And the API server serves the same URLs for them.
    token = login(api_server)
    assert task_links(api_server, token, dag_run, "submit") == {
        "Anthropic Console": CONSOLE.format(batch_id=batch), "Nightshift run": run_page}
