"""Operator extra links: from a task in the Airflow UI to its night in the dashboard and its batch in the Console.

Airflow 3 asks a link for its URL in two places, and both links work in either:

* on the worker, when the task finishes (``operator_extra_links`` declared on the operator
  class): the task runner calls ``get_link(operator, ti_key=<the running task instance>)`` and
  stores the URL in XCom under ``link.xcom_key``; the API server later serves that stored
  URL. Here XCom is read with the task instance's own ``xcom_pull`` (the Task SDK).
* in the API server, live, for links a plugin registers for an operator class
  (``AirflowPlugin.operator_extra_links`` with ``operators``; the plugin's take precedence):
  ``ti_key`` is a ``TaskInstanceKey`` and XCom is read from the metadata database.

Neither touches the application database: a missing or broken ledger cannot break the task
page. ``get_link`` never raises (the UI would show an error for every link of the task); it
returns ``""``, which the UI shows as a disabled button.

Which batch the Console link opens: a submit task's round can have several batches, and a
link is one URL, so it opens the round's first batch; the "Nightshift run" link opens the
dashboard's page of the run, which lists every batch of every round with its Console link.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseOperatorLink

from nightshift.ui import urls

log = logging.getLogger(__name__)

RETURN_VALUE = "return_value"


class NightshiftRunLink(BaseOperatorLink):
    """Task → the dashboard's page of the night its DAG run recorded (resolved by dag_id and run_id)."""

    name = "Nightshift run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            return urls.run_page_for_airflow_run(ti_key.dag_id, ti_key.run_id)
        except Exception:
            log.exception("Nightshift run link for %s failed", ti_key)
            return ""


class AnthropicConsoleBatchLink(BaseOperatorLink):
    """Submit (or wait) task → its round's first batch in the Anthropic Console (``[nightshift] console_batch_url``).

    The batch ids come from the submit task's return value (``{"batch_ids": [...], ...}``): the
    task's own for a submit task, else its direct upstream's (the wait sensor follows its
    round's submit task).
    """

    name = "Anthropic Console"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            batch_ids = submitted_batch_ids(operator, ti_key)
            return urls.console_batch_url(batch_ids[0]) if batch_ids else ""
        except Exception:
            log.exception("Anthropic Console link for %s failed", ti_key)
            return ""


def submitted_batch_ids(operator: Any, ti_key: Any) -> list[str]:
    """The batch ids a submit task returned: this task's, else its first upstream task's that has some."""
    candidates = [ti_key.task_id, *sorted(getattr(operator, "upstream_task_ids", ()) or ())]
    for task_id in candidates:
        value = _return_value(ti_key, task_id)
        if isinstance(value, dict) and value.get("batch_ids"):
            return [str(b) for b in value["batch_ids"]]
    return []


def _return_value(ti_key: Any, task_id: str) -> Any:
    """A task's return value in the same DAG run: Task SDK on a worker, metadata DB in the API server."""
    if hasattr(ti_key, "xcom_pull"):  # a RuntimeTaskInstance: we run inside the task's process
        return ti_key.xcom_pull(task_ids=task_id, key=RETURN_VALUE)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(run_id=ti_key.run_id, key=RETURN_VALUE, dag_ids=ti_key.dag_id, task_ids=task_id,
                               map_indexes=ti_key.map_index).with_only_columns(XComModel.value)
        ).first()
    return XComModel.deserialize_value(row) if row is not None else None
