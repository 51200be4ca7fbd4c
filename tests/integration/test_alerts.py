"""Alerts go through Airflow's notifier mechanism, to the notifier the deployment names."""

from __future__ import annotations

import pytest

from airflow.sdk import DAG, BaseNotifier
from airflow.sdk.exceptions import AirflowFailException

from nightshift.batch.ledger import ensure_run
from nightshift.operators import NightVerdictOperator
from nightshift.deployment import get_workload

SENT: list[str] = []


class RecordingNotifier(BaseNotifier):
    """A notifier of the kind a deployment would name, that remembers what it was asked to send."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def notify(self, context) -> None:
        SENT.append(self.message)


@pytest.fixture
def recording(monkeypatch):
    SENT.clear()
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__NOTIFIER", f"{__name__}.RecordingNotifier")
    return SENT


def night(app_db, status, requests, failed, message=None):
    workload = get_workload("ticket_classification")
    run = ensure_run(app_db, workload, dag_id="alerts", airflow_run_id=f"{status}-{failed}")
    app_db.execute("UPDATE nightshift.runs SET status = %s, requests = %s, failed = %s, succeeded = %s, message = %s "
                   "WHERE run_pk = %s", (status, requests, failed, requests - failed, message, run.run_pk))
    app_db.commit()
    operator = NightVerdictOperator(task_id="verdict", workload=workload.name)
    return operator, {"dag": DAG("alerts", schedule=None), "run_id": f"{status}-{failed}"}


def test_a_failed_night_alerts_and_fails(app_db, recording):
    operator, context = night(app_db, "failed", 10, 10, "deadline passed; cancelled: msgbatch_x")
    with pytest.raises(AirflowFailException):
        operator.execute(context)
    assert len(recording) == 1 and "msgbatch_x" in recording[0]


def test_a_night_over_the_failure_threshold_alerts_but_succeeds(app_db, recording):
    operator, context = night(app_db, "succeeded", 100, 6)
    assert operator.execute(context)["status"] == "succeeded"
    assert recording == ["run 1 of ticket_classification: 6 of 100 requests failed (6.0%), above the workload's "
                         "threshold of 5.0%"]


def test_a_healthy_night_sends_nothing(app_db, recording):
    operator, context = night(app_db, "succeeded", 100, 5)
    operator.execute(context)
    assert recording == []
