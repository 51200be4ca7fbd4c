"""A key the API refuses while a night waits: the trigger ends at once with a permanent error, and the
sensor (deferred or poking) fails without a task retry, naming the URL and never the key."""

from __future__ import annotations

import asyncio
import json
import types

import pytest

from tests.integration.test_trigger import first_event, submitted_batches, trigger

WRONG_KEY = "sk-ant-api03-revoked-FAILFAST-1111"


@pytest.fixture
def revoked_key(app_db, anthropic_conn, monkeypatch):
    """Batches submitted with the right key; then the connection's key is one the API refuses."""
    batch_ids = submitted_batches(app_db, anthropic_conn)
    anthropic_conn.configure(api_key=anthropic_conn.api_key)
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT",
                       json.dumps({"conn_type": "anthropic", "host": anthropic_conn.url, "password": WRONG_KEY}))
    return batch_ids


def refused_polls(emulator) -> int:
    return sum(entry["by_status"].get("401", 0) for entry in emulator.stats()["endpoints"].values())


def test_the_trigger_ends_at_once_and_the_deferred_sensor_fails_without_retry(revoked_key, anthropic_conn):
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.sensors import BatchesEndedSensor

    event = asyncio.run(first_event(trigger(revoked_key, max_consecutive_failures=5)))

    assert event["status"] == "error" and event["permanent"] is True, event
    assert f"the API at {anthropic_conn.url.rstrip('/')}" in event["message"] and WRONG_KEY not in event["message"]
    assert refused_polls(anthropic_conn) == 1  # not max_consecutive_failures polls
    sensor = BatchesEndedSensor(task_id="wait", workload="ticket_classification")
    with pytest.raises(AirflowFailException, match="refused the key"):
        sensor.execute_complete({}, event)


def test_the_poking_sensor_fails_without_retry(revoked_key, anthropic_conn):
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.sensors import BatchesEndedSensor

    sensor = BatchesEndedSensor(task_id="wait", workload="ticket_classification", deferrable=False)
    context = {"dag": types.SimpleNamespace(dag_id="trigger"), "run_id": "t", "params": {}}
    with pytest.raises(AirflowFailException, match="authentication_error") as failed:
        sensor.poke(context)
    assert anthropic_conn.url.rstrip("/") in str(failed.value) and WRONG_KEY not in str(failed.value)
    assert refused_polls(anthropic_conn) == 1
