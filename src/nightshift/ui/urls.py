"""Where the dashboard lives and where a batch lives in the Anthropic Console.

Pure string work on environment and configuration: no database, no network. Used by the app,
the plugin (its navigation entries) and the operator links (on workers and in the API server).
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlencode, urlsplit

#: Where the plugin mounts the app inside Airflow's API server.
URL_PREFIX = "/nightshift"
DEFAULT_CONSOLE_BATCH_URL = "https://console.anthropic.com/workspaces/default/batches/{batch_id}"


def api_root_path() -> str:
    """The path part of Airflow's ``[api] base_url`` ('' when Airflow is served at the host root)."""
    base = os.environ.get("AIRFLOW__API__BASE_URL")
    if base is None:
        base = _configured_base_url()
    return urlsplit(base).path.rstrip("/")


def _configured_base_url() -> str:
    """``[api] base_url`` from Airflow's configuration (core's, else the Task SDK's on a bare worker)."""
    try:
        from airflow.configuration import conf
    except ImportError:
        try:
            from airflow.sdk.configuration import conf
        except ImportError:
            return ""
    return conf.get("api", "base_url", fallback="") or ""


def dashboard_url(path: str = "") -> str:
    """A dashboard page as a path on the Airflow host (``[nightshift] dashboard_url`` overrides the base)."""
    from nightshift.config import option

    base = option("dashboard_url") or api_root_path() + URL_PREFIX
    return base.rstrip("/") + "/" + path.lstrip("/")


def run_page_for_airflow_run(dag_id: str, run_id: str) -> str:
    """The dashboard page of the ledger run an Airflow DAG run recorded (resolved when opened)."""
    return dashboard_url("airflow-run?" + urlencode({"dag_id": dag_id, "run_id": run_id}))


def console_batch_url(batch_id: str) -> str:
    """A batch's page in the Anthropic Console: ``[nightshift] console_batch_url`` with ``{batch_id}``."""
    from nightshift.config import option

    pattern = option("console_batch_url") or DEFAULT_CONSOLE_BATCH_URL
    return pattern.replace("{batch_id}", quote(batch_id, safe=""))


def airflow_dag_run_url(dag_id: str, run_id: str) -> str:
    """The DAG run's page in the Airflow 3 UI."""
    return f"{api_root_path()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
