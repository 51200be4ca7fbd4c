"""Nightshift's Airflow plugin: the dashboard in the API server, its place in the UI, the operator links.

Airflow finds it through the distribution's ``airflow.plugins`` entry point, so installing the
package is all a deployment does (nothing goes in its plugins folder). Every Airflow process
imports it — scheduler, dag-processor, triggerer, each task — so importing it
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
from airflow.sdk import BaseOperatorLink

from nightshift.ui import urls
from nightshift.ui.links import AnthropicConsoleBatchLink, NightshiftRunLink


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


def plugin_links() -> list[BaseOperatorLink]:
    """The links the plugin registers, each bound to the Nightshift operators it belongs to.

    Here, not in :mod:`nightshift.ui.links`: the operators import the link classes to declare
    them, so binding the links to the operators belongs to the one module above both.
    """
    from nightshift.operators import (
        CollectRequestsOperator,
        FinalizeRunOperator,
        LandResultsOperator,
        NightVerdictOperator,
        SubmitBatchesOperator,
    )
    from nightshift.sensors import BatchesEndedSensor

    console = AnthropicConsoleBatchLink()
    console.operators = [SubmitBatchesOperator, BatchesEndedSensor]
    night = NightshiftRunLink()
    night.operators = [CollectRequestsOperator, SubmitBatchesOperator, BatchesEndedSensor, LandResultsOperator,
                       FinalizeRunOperator, NightVerdictOperator]
    return [console, night]


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
