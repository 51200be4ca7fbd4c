"""The official Airflow Anthropic provider, unchanged, against the emulator.

The hook tests need no Airflow metadata database: the connection comes from the
``AIRFLOW_CONN_ANTHROPIC_EMULATOR`` environment variable. The deferrable operator test runs a
real ``dag.test()`` and so needs the migrated database that the ``airflow_db`` fixture of the
root ``conftest.py`` provides; those tests are marked ``airflow``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from emulator.testing import EmulatorServer, batch_request

CONN_ID = "anthropic_emulator"
CONN_ENV = "AIRFLOW_CONN_ANTHROPIC_EMULATOR"
MODEL = "claude-haiku-4-5"


@pytest.fixture
def emulator_connection(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    connection = {"conn_type": "anthropic", "host": emulator.url, "password": emulator.api_key}
    monkeypatch.setenv(CONN_ENV, json.dumps(connection))
    return emulator


def _hook():
    from airflow.providers.anthropic.hooks.anthropic import AnthropicHook

    return AnthropicHook(conn_id=CONN_ID)


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _requests(count: int) -> list[dict]:
    """Provider-style requests: no model in params, the hook fills it in."""
    return [
        {"custom_id": f"ticket-{i}", "params": {"max_tokens": 128, "messages": _user(f"Ticket {i}: refund.")}}
        for i in range(count)
    ]


def test_hook_creates_gets_and_streams_results(emulator_connection: EmulatorServer) -> None:
    hook = _hook()
    batch = hook.create_batch(_requests(3), model=MODEL)
    assert batch.processing_status == "in_progress"
    fetched = hook.get_batch(batch.id)
    assert fetched.processing_status == "ended" and fetched.request_counts.succeeded == 3
    results = {result.custom_id: result.result for result in hook.stream_batch_results(batch.id)}
    assert set(results) == {"ticket-0", "ticket-1", "ticket-2"}
    assert all(result.type == "succeeded" and result.message.model == MODEL for result in results.values())
    assert hook.wait_for_batch(batch.id, wait_seconds=0).processing_status == "ended"
    assert [b.id for b in hook.list_batches(limit=5)] == [batch.id]
    stats = emulator_connection.stats()
    assert stats["batches"] == [{"id": batch.id, "request_count": 3}]
    assert stats["endpoints"]["results"]["total"] == 1


def test_hook_cancel_and_messages(emulator_connection: EmulatorServer) -> None:
    emulator_connection.configure(rate=0.001)
    hook = _hook()
    batch = hook.create_batch(_requests(2), model=MODEL)
    assert hook.cancel_batch(batch.id).processing_status == "canceling"
    emulator_connection.advance(60)
    assert hook.get_batch(batch.id).request_counts.canceled == 2
    messages = [{"role": "user", "content": "Hello from Airflow."}]
    assert hook.create_message(messages, model=MODEL, max_tokens=200).content[0].type == "text"
    assert hook.count_tokens(messages, model=MODEL) > 0


def test_hook_survives_a_transient_overload(emulator_connection: EmulatorServer) -> None:
    hook = _hook()
    batch = hook.create_batch(_requests(1), model=MODEL)
    emulator_connection.add_fault(kind="status", endpoint="retrieve", status=529, count=2, retry_after=0.01)
    assert hook.get_batch(batch.id).processing_status == "ended"
    assert emulator_connection.endpoint_calls("retrieve") == 3


def _batch_dag(dag_id: str, requests: list[dict], **operator_kwargs):
    """A one-task DAG, written to the metadata DB first: Airflow 3.3's ``dag.test()`` only runs
    DAGs it finds serialized, and this one lives in a test module, not in a bundle."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.providers.anthropic.operators.batch import AnthropicBatchOperator
    from airflow.sdk import DAG

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with DAG(dag_id=dag_id, schedule=None, start_date=start, catchup=False) as dag:
        AnthropicBatchOperator(
            task_id="submit_batch",
            conn_id=CONN_ID,
            requests=requests,
            model=MODEL,
            deferrable=True,
            poll_interval=1,
            retries=0,
            **operator_kwargs,
        )
    bag = DagBag(dag_folder="/dev/null", collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag


@pytest.mark.airflow
def test_deferrable_batch_operator_runs_in_dag_test(airflow_db, emulator_connection: EmulatorServer) -> None:
    dag_run = _batch_dag("emulator_batch_operator", _requests(4)).test()
    assert dag_run.state == "success"
    stats = emulator_connection.stats()
    assert stats["batches_created"] == 1 and stats["batch_requests_total"] == 4
    assert stats["endpoints"]["retrieve"]["total"] >= 1  # polled by the trigger

    from airflow.providers.anthropic.hooks.anthropic import AnthropicHook

    batch_id = stats["batches"][0]["id"]
    assert AnthropicHook(conn_id=CONN_ID).get_batch(batch_id).request_counts.succeeded == 4


@pytest.mark.airflow
def test_deferrable_batch_operator_fails_on_partial_errors(airflow_db, emulator_connection) -> None:
    emulator_connection.add_fault(kind="item_error", custom_id="ticket-1", error_type="overloaded_error")
    requests = _requests(3)
    dag_run = _batch_dag("emulator_batch_operator_partial", requests, fail_on_partial_error=True).test()
    assert dag_run.state == "failed"
    assert emulator_connection.stats()["batches_created"] == 1


def test_emulator_batch_request_helper_matches_the_provider_shape() -> None:
    request = batch_request("a", "hi", model=MODEL)
    assert set(request) == {"custom_id", "params"} and request["params"]["model"] == MODEL
