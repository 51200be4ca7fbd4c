"""Nightshift's Airflow plugin: the dashboard in the API server, its place in the UI, the operator links.

This is the one module Airflow's plugin loader imports from ``plugins/`` (``plugins/.airflowignore``
keeps the loader out of ``nightshift/``, which is imported as an installed package). Every
Airflow process imports it — scheduler, dag-processor, triggerer, each task — so importing it
is cheap: no database, no network, and not even FastAPI: the dashboard app is built on the
first request the API server routes to it.

* ``fastapi_apps``: the dashboard (:mod:`nightshift.ui.app`) mounted at ``/nightshift``, behind
  Airflow's own authentication (see ``docs/dashboard.md``).
* ``external_views``: a "Nightshift" entry in the navigation that shows the dashboard inside
  the Airflow UI, and a "Nightshift" tab on every DAG run that shows the night it recorded.
* ``operator_extra_links``: "Anthropic Console" on submit and wait tasks, "Nightshift run" on
  every batch-path task (:mod:`nightshift.ui.links`), computed live by the API server.
"""

from __future__ import annotations

import threading

from airflow.plugins_manager import AirflowPlugin

from nightshift.ui import urls
from nightshift.ui.links import plugin_links


class LazyDashboard:
    """An ASGI app that builds the dashboard's FastAPI app on its first request, once."""

    def __init__(self) -> None:
        self._app = None
        self._lock = threading.Lock()

    @property
    def app(self):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from nightshift.ui.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


dashboard = {"app": LazyDashboard(), "url_prefix": urls.URL_PREFIX, "name": "Nightshift dashboard"}

nav_entry = {
    "name": "Nightshift",
    "href": urls.dashboard_url(""),
    "url_route": "nightshift",
    "destination": "nav",
    "nav_top_level": True,
}

dag_run_tab = {
    "name": "Nightshift",
    # The UI fills in {DAG_ID} and {RUN_ID} (URL-encoded) for the DAG run being shown.
    "href": urls.dashboard_url("airflow-run?dag_id={DAG_ID}&run_id={RUN_ID}"),
    "url_route": "nightshift-run",
    "destination": "dag_run",
}


class NightshiftPlugin(AirflowPlugin):
    name = "nightshift"
    fastapi_apps = [dashboard]
    external_views = [nav_entry, dag_run_tab]
    operator_extra_links = plugin_links()
