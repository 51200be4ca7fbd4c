"""The plugin: found through the distribution's entry point, cheap to import, registering app, views and links."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def load_plugins() -> tuple[list, dict]:
    """The plugins Airflow's plugin manager finds through ``airflow.plugins`` entry points."""
    from airflow._shared.plugins_manager import _load_entrypoint_plugins

    plugins, errors = _load_entrypoint_plugins()
    return [p for p in plugins if p.name == "nightshift"], errors


def test_airflow_finds_the_plugin_through_the_entry_point():
    plugins, errors = load_plugins()
    assert errors == {}
    assert [p.name for p in plugins] == ["nightshift"]
    assert str(plugins[0].source).startswith("nightshift==") and "nightshift.plugin:NightshiftPlugin" in str(plugins[0].source)


def test_importing_the_plugin_is_cheap_and_touches_no_database():
    """In a fresh interpreter, as an Airflow process does: no FastAPI, Jinja2 or psycopg, no connection."""
    code = """
import json, sys, time
import airflow.plugins_manager, airflow.sdk  # what every Airflow process has loaded before plugins
before = set(sys.modules)
start = time.perf_counter()
from airflow._shared.plugins_manager import _load_entrypoint_plugins
plugins, errors = _load_entrypoint_plugins()
elapsed = time.perf_counter() - start
loaded = set(sys.modules) - before
print(json.dumps({"seconds": elapsed, "errors": errors, "names": [p.name for p in plugins],
                  "heavy": sorted(m for m in loaded if m.split(".")[0] in ("fastapi", "jinja2", "psycopg", "anthropic")
                                  or m == "nightshift.ui.app")}))
"""
    env = {**os.environ, "AIRFLOW_CONN_NIGHTSHIFT_DB": "postgresql://nobody@127.0.0.1:1/unreachable"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {} and "nightshift" in report["names"]
    assert report["heavy"] == []
    assert report["seconds"] < 0.5, report


def test_the_plugin_registers_the_app_the_navigation_and_the_links():
    from nightshift.operators import (
        CollectRequestsOperator,
        FinalizeRunOperator,
        LandResultsOperator,
        NightVerdictOperator,
        SubmitBatchesOperator,
    )
    from nightshift.sensors import BatchesEndedSensor
    from nightshift.ui.links import AnthropicConsoleBatchLink, NightshiftRunLink

    (plugin,) = load_plugins()[0]
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/nightshift" and app["name"] and callable(app["app"])
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

    assert not any(app["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)

    nav, tab = plugin.external_views
    assert nav["destination"] == "nav" and nav["url_route"] == "nightshift" and nav["href"] == "/nightshift/"
    assert tab["destination"] == "dag_run" and tab["url_route"] != nav["url_route"]
    assert tab["href"] == "/nightshift/airflow-run?dag_id={DAG_ID}&run_id={RUN_ID}"

    links = {type(link): link for link in plugin.operator_extra_links}
    assert set(links) == {AnthropicConsoleBatchLink, NightshiftRunLink}
    assert links[AnthropicConsoleBatchLink].operators == [SubmitBatchesOperator, BatchesEndedSensor]
    assert set(links[NightshiftRunLink].operators) == {
        CollectRequestsOperator, SubmitBatchesOperator, BatchesEndedSensor, LandResultsOperator,
        FinalizeRunOperator, NightVerdictOperator}


def test_the_plugin_serves_through_airflows_plugin_model():
    """The API server's /plugins serializer accepts what the plugin declares."""
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse, FastAPIAppResponse

    (plugin,) = load_plugins()[0]
    for view in plugin.external_views:
        ExternalViewResponse.model_validate(view)
    FastAPIAppResponse.model_validate({**plugin.fastapi_apps[0], "app": "LazyDashboard"})


def test_the_navigation_follows_airflows_base_url_path(monkeypatch):
    from nightshift.ui import urls

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/data/airflow/")
    assert urls.dashboard_url("") == "/data/airflow/nightshift/"
    assert urls.airflow_dag_run_url("d", "manual__2026-01-01T02:00:00+00:00") == \
        "/data/airflow/dags/d/runs/manual__2026-01-01T02%3A00%3A00%2B00%3A00"
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__DASHBOARD_URL", "https://airflow.example.com/nightshift")
    assert urls.dashboard_url("runs/3") == "https://airflow.example.com/nightshift/runs/3"


@pytest.mark.parametrize("pattern, expected", [
    (None, "https://console.anthropic.com/workspaces/default/batches/msgbatch_01"),
    ("https://console.example/ws/nightly/batches/{batch_id}", "https://console.example/ws/nightly/batches/msgbatch_01"),
])
def test_the_console_url_is_configurable(monkeypatch, pattern, expected):
    from nightshift.ui import urls

    if pattern:
        monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__CONSOLE_BATCH_URL", pattern)
    else:
        monkeypatch.delenv("AIRFLOW__NIGHTSHIFT__CONSOLE_BATCH_URL", raising=False)
    assert urls.console_batch_url("msgbatch_01") == expected
