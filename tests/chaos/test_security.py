"""Security: the API key stays in the connection, every plugin route needs Airflow's login, the
emulator listens on loopback, and the failures CSV cannot carry a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from emulator.testing import EmulatorServer
from nightshift.dag_ids import batch_dag_id, trial_dag_id
from nightshift.paths import PROJECT_ROOT
from tests.helpers import seed

pytestmark = pytest.mark.chaos


# The API key ------------------------------------------------------------------------------------

CANARY = uuid.uuid4().hex
API_KEY = f"sk-ant-api03-{CANARY}-nightshift-canary"


def leaks(where: str, text: str | bytes) -> list[str]:
    """Where the key (or its distinctive part, as text or as the hex a bytea column dumps as) shows."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    needles = (API_KEY, CANARY, CANARY.encode().hex(), API_KEY.encode().hex())
    return [f"{where}: {needle[:12]}…" for needle in needles if needle in text]


def dump_schemas(dsn: str, schemas: list[str]) -> dict[str, bytes]:
    """Every table of ``schemas``, whole, as COPY text."""
    dumps = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
                              (schemas,)).fetchall()
        for schema, table in tables:
            buffer = bytearray()
            with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(schema, table))) as copy:
                for block in copy:
                    buffer += block
            dumps[f"{schema}.{table}"] = bytes(buffer)
    return dumps


@pytest.fixture
def keyed_emulator(tmp_path, monkeypatch):
    """An emulator that accepts this test's key only, and the standard connection holding it."""
    with EmulatorServer(tmp_path / "emulator", rate="inf", api_key=API_KEY) as server:
        monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT",
                           json.dumps({"conn_type": "anthropic", "host": server.url, "password": API_KEY}))
        yield server


@pytest.fixture(scope="module")
def api_server(airflow_db):
    """Airflow's API server app (core API, auth manager, plugins), as ``airflow api-server`` builds it."""
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app(apps="core")) as client:
        yield client


def admin_token(api_server) -> str:
    response = api_server.post("/auth/token", json={"username": "admin", "password": "admin"})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def plugin_apps() -> list[tuple[str, object]]:
    """``(url_prefix, FastAPI app)`` of every app the deployment's plugins hand Airflow's API server."""
    from airflow.plugins_manager import get_fastapi_plugins

    apps, _ = get_fastapi_plugins()
    return [(entry["url_prefix"], getattr(entry["app"], "app", entry["app"])) for entry in apps]  # lazy → real


def dashboard_app():
    """The dashboard exactly as the plugin hands it to Airflow's API server."""
    (prefix, app), *_ = [(p, a) for p, a in plugin_apps() if p == "/nightshift"]
    return prefix, app


@pytest.mark.airflow
def test_the_api_key_appears_nowhere_but_the_connection(
        airflow_db, app_db, app_dsn, pg_cluster, keyed_emulator, api_server, capfd, caplog):
    from airflow.dag_processing.dagbag import DagBag

    for name in ("", "anthropic", "httpx", "httpcore", "nightshift", "airflow"):  # as chatty as it gets
        caplog.set_level(logging.DEBUG, logger=name or None)
    seed(app_db, tickets=12, bad_every=5)
    keyed_emulator.add_fault(kind="item_error", error_type="invalid_request_error", custom_id=r".*-q3")
    keyed_emulator.add_fault(kind="perturb", mode="not_json", custom_id=r".*-q4")
    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "nightshift_batch.py")).get_dag(
        batch_dag_id("ticket_classification"))

    dag_run = dag.test(run_conf={"poll_interval_seconds": 0.2, "max_requests_per_batch": 5})

    assert str(dag_run.state) == "success"
    # A model trial of the rows the night wrote, so its pages are read below as well.
    trial_dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "nightshift_trial.py")).get_dag(
        trial_dag_id("ticket_classification"))
    trial_run = trial_dag.test(run_conf={"poll_interval_seconds": 0.2, "candidate": "claude-sonnet-5-5",
                                         "sample": 4, "seed": 1})
    assert str(trial_run.state) == "success"
    # The key really went to the API: this emulator refuses any other one.
    assert keyed_emulator.stats()["batches_created"] == 3
    wrong = httpx.get(f"{keyed_emulator.url}/v1/messages/batches", headers={"x-api-key": "sk-ant-some-other-key"})
    assert wrong.status_code == 401

    out, err = capfd.readouterr()
    places: dict[str, str | bytes] = {"task output (stdout)": out, "task output (stderr)": err, "log records": caplog.text}
    assert re.search(r"collected 12 ticket_classification requests into run \d+", out + caplog.text), \
        "the task logs were not captured: the check below would prove nothing"
    log_folder = Path(airflow_db) / "logs"
    places |= {f"log file {p}": p.read_bytes() for p in log_folder.rglob("*") if p.is_file()}

    # The metadata DB, every table: XCom, rendered templates, task instances, triggers, the audit log...
    metadata = dump_schemas(pg_cluster.dsn("airflow"), ["public"])
    for table in ("xcom", "rendered_task_instance_fields"):
        assert dag_run.run_id.encode() in metadata[f"public.{table}"], f"nothing of this run in {table}"
    places |= {f"metadata table {t}": dump for t, dump in metadata.items()}

    # The application database: the ledger and the destination tables.
    ledger = dump_schemas(app_dsn, ["nightshift", "app"])
    batch_ids = [b for (b,) in app_db.execute("SELECT backend_batch_id FROM nightshift.batches")]
    assert batch_ids and all(b.encode() in ledger["nightshift.batches"] for b in batch_ids)
    places |= {f"app table {t}": dump for t, dump in ledger.items()}

    # The dashboard, every page and JSON/CSV endpoint, as a logged-in admin sees them.
    run_pk = app_db.execute("SELECT run_pk FROM nightshift.runs WHERE airflow_run_id = %s",
                            (dag_run.run_id,)).fetchone()[0]
    prefix, app = dashboard_app()
    bearer = {"Authorization": f"Bearer {admin_token(api_server)}"}
    trial_pk = app_db.execute("SELECT max(trial_pk) FROM nightshift.model_trials WHERE status = 'reported'"
                              ).fetchone()[0]
    fill = {"run_pk": str(run_pk), "trial_pk": str(trial_pk)}
    query = {"/airflow-run": f"?dag_id={dag_run.dag_id}&run_id={quote(dag_run.run_id, safe='')}",
             "/failures": f"?run_pk={run_pk}", "/api/failures.csv": f"?run_pk={run_pk}"}
    seen = []
    for route in app.routes:
        if "GET" not in getattr(route, "methods", ()):
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: fill[m.group(1)], route.path) + query.get(route.path, "")
        response = api_server.get(prefix + path, headers=bearer)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
        places[f"dashboard {path}"] = response.content
        seen.append(route.path)
    assert {"/", "/runs/{run_pk}", "/failures", "/api/failures.csv", "/api/nights/{run_pk}", "/trials/{trial_pk}",
            "/api/trials/{trial_pk}"} <= set(seen)
    assert b"invalid_output" in places[f"dashboard /api/failures.csv?run_pk={run_pk}"]  # the pages have content

    found = [hit for where, text in places.items() for hit in leaks(where, text)]
    assert not found, f"the API key leaked: {found}"
    assert leaks("self-check", f"prefix {API_KEY} suffix")  # the scan itself finds a key that is there


# Every plugin route behind Airflow's login ------------------------------------------------------

def plugin_routes() -> list[tuple[str, str, str]]:
    """``(method, path, kind)`` for every route of every FastAPI app our plugins mount.

    Found by walking the apps as the plugin registers them, so a route added later is checked
    without anyone listing it; a kind of route this walk does not know fails the test instead
    of being skipped.
    """
    from fastapi.routing import APIRoute
    from starlette.routing import Mount, Route, WebSocketRoute

    routes = []
    for prefix, app in plugin_apps():
        for route in app.routes:
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            if isinstance(route, (APIRoute, Route)):
                routes += [(method, prefix + path, "api" if path.startswith("/api/") else "page")
                           for method in sorted(route.methods - {"HEAD"})]
            elif isinstance(route, Mount):
                routes.append(("GET", prefix + path + "/", "page"))
            else:
                raise AssertionError(f"unexpected route type {type(route).__name__} at {route.path}: "
                                     "extend this test to check it")
            assert not isinstance(route, WebSocketRoute)
    return routes


def test_the_plugin_route_walk_finds_the_dashboard():
    routes = plugin_routes()
    paths = {p for _, p, _ in routes}
    assert {"/nightshift/", "/nightshift/runs/1", "/nightshift/failures", "/nightshift/airflow-run",
            "/nightshift/api/nights", "/nightshift/api/nights/1", "/nightshift/api/series", "/nightshift/api/failures",
            "/nightshift/api/failures.csv"} <= paths


@pytest.mark.airflow
@pytest.mark.parametrize(("method", "path", "kind"), plugin_routes(), ids=lambda v: str(v))
def test_every_plugin_route_refuses_an_anonymous_caller(api_server, app_db, method, path, kind):
    """Through Airflow's real API server, without a token or cookie, and without the query
    parameters a route needs: authentication comes first, so nothing else is even looked at."""
    api_server.cookies.clear()
    response = api_server.request(method, path, follow_redirects=False)
    if kind == "api":
        assert response.status_code == 401, response.text[:200]
        assert response.json() == {"detail": "Not authenticated"}
    else:
        assert response.status_code == 302, response.text[:200]
        assert response.headers["location"].startswith("/auth/login?next=")
    forged = api_server.request(method, path, headers={"Authorization": "Bearer forged.token.here"},
                                follow_redirects=False)
    assert forged.status_code in (302, 401, 403)


def test_every_route_depends_on_airflows_authorization():
    """Statically too: the dependency sits on the app, so every route, present or future, runs it."""
    from fastapi.routing import APIRoute

    from nightshift.ui.app import require_dag_run_read

    _, app = dashboard_app()

    def dependencies(dependant):
        for sub in dependant.dependencies:
            yield sub.call
            yield from dependencies(sub)

    api_routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert api_routes
    for route in api_routes:
        assert require_dag_run_read in set(dependencies(route.dependant)), route.path


# The emulator on loopback -----------------------------------------------------------------------

def test_the_emulator_listens_on_loopback_by_default(tmp_path):
    from emulator.__main__ import build_parser

    assert build_parser().parse_args([]).host == "127.0.0.1"
    process = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0", "--state", str(tmp_path / "s.db")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=PROJECT_ROOT)
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"emulator listening on http://(.+):(\d+)\n", line)
        assert match and match.group(1) == "127.0.0.1", line
        port = int(match.group(2))
        listening = _listening_addresses(port)
        assert listening == {"127.0.0.1"}, listening  # the kernel's view, not the process's word
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_nightshift_commands_start_the_emulator_without_widening_its_address():
    """``make emulator`` / ``nightshift emulator`` and the demo pass no --host: loopback."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^emulator: .*\n\t\$\(NIGHTSHIFT\) emulator --port \d+$", makefile, re.M)
    demo = (PROJECT_ROOT / "devtools" / "nightshift_dev" / "localdev" / "demo.py").read_text()
    assert '"-m", "emulator"' in demo and "--host" not in demo


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    addresses = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    addresses.add(".".join(str(b) for b in reversed(raw)))
                else:
                    addresses.add(raw.hex())
    return addresses


# CSV formula injection --------------------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+2", "-2+3", "@SUM(A1:A2)", "\tTAB", "\r=1"]


@pytest.mark.airflow
def test_the_failures_csv_never_starts_a_cell_with_a_formula(app_db, app_dsn, emulator, airflow_db):
    """Source keys and error messages come from outside: a cell that starts like a formula is
    prefixed with ``'`` so a spreadsheet shows it as text."""
    from nightshift.ledger import dashboard as queries
    from nightshift.deployment import get_workload
    from tests.batch_night import run_night
    from tests.helpers import emulator_backend

    seed(app_db, tickets=3)
    for key in FORMULAS:
        app_db.execute("INSERT INTO app.llm_requests (workload, source_key) VALUES ('ticket_classification', %s)",
                       (key,))
    app_db.commit()
    emulator.add_fault(kind="item_error", error_type="invalid_request_error", custom_id=r".*-q1",
                       message="=cmd|' /C calc'!A0")
    run_night(app_db, emulator_backend(emulator), get_workload("ticket_classification"))

    text = b"".join(queries.failures_csv(app_db, queries.FailureFilter())).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(FORMULAS) + 1
    for row in rows:
        for column, cell in row.items():
            assert not re.match(r"[=+\-@\t\r]", cell), (column, cell)
    keys = {row["source_key"] for row in rows}
    assert {"'" + key for key in FORMULAS} <= keys  # kept whole, only prefixed
    assert "'=cmd|' /C calc'!A0" in {row["error_message"] for row in rows}
    assert any(row["source_key"] == "1" for row in rows)  # ordinary cells are left alone
    # The same through the dashboard's endpoint, which streams this function's output.
    from tests.ui.support import client_for, jwt_for
    from airflow.api_fastapi.app import init_auth_manager

    with client_for(app_dsn, jwt_for(init_auth_manager())) as client:
        assert client.get("/api/failures.csv").text == text


# make audit -----------------------------------------------------------------------------------

def audit_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("nightshift_audit", PROJECT_ROOT / "scripts" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AUDITED = {"name": "jinja2", "version": "3.1.6", "vulns": []}
VULNERABLE = {"name": "oldlib", "version": "1.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["1.1"], "aliases": []}]}
SKIPPED = {"name": "alembic", "skip_reason": "Dependency not found on PyPI and could not be audited: alembic (1.20.1)"}


@pytest.mark.parametrize(("dependencies", "strict", "status", "says"), [
    ([AUDITED, VULNERABLE], False, 1, "VULNERABLE oldlib==1.0: GHSA-xxxx (fixed in: 1.1)"),
    ([AUDITED], False, 0, "no known vulnerabilities in all 1 pinned packages"),
    ([SKIPPED, SKIPPED], False, 0, "NOTHING WAS CHECKED"),
    ([SKIPPED, SKIPPED], True, 2, "NOTHING WAS CHECKED"),
    ([AUDITED, SKIPPED], False, 0, "1 could not be checked: alembic"),
    (None, False, 0, "NOTHING WAS CHECKED: pip-audit could not complete"),
    (None, True, 2, "most likely the vulnerability service is unreachable"),
], ids=["vulnerable", "clean", "service-answers-nothing", "strict-nothing", "partly", "unreachable", "strict-unreachable"])
def test_make_audit_tells_found_from_clean_from_unchecked(monkeypatch, capsys, dependencies, strict, status, says):
    audit = audit_module()

    def fake_pip_audit(requirements, service, report):
        if dependencies is not None:
            report.write_text(json.dumps({"dependencies": dependencies, "fixes": []}))
        return subprocess.CompletedProcess([], 0 if dependencies is not None else 1, "",
                                           "ConnectionError: cannot reach the service")

    monkeypatch.setattr(audit, "run_pip_audit", fake_pip_audit)
    monkeypatch.setenv("AUDIT_STRICT", "1" if strict else "0")
    assert audit.main() == status
    assert says in capsys.readouterr().out


def test_pip_audit_is_pinned_and_make_audit_runs_it():
    requirements = (PROJECT_ROOT / "requirements.txt").read_text()
    constraints = (PROJECT_ROOT / "constraints.txt").read_text()
    assert re.search(r"^pip-audit==\d+\.\d+\.\d+$", requirements, re.M)
    assert re.search(r"^pip_audit==\d+\.\d+\.\d+$", constraints, re.M | re.I)
    assert re.search(r"^audit: install\n\t\$\(PY\) scripts/audit\.py$", (PROJECT_ROOT / "Makefile").read_text(), re.M)
