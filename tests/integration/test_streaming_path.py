"""The streaming path end to end: real Postgres, the emulator over HTTP, the official SDK."""

from __future__ import annotations

from nightshift.streaming import run_streaming
from nightshift.deployment import get_workload
from tests.helpers import queue_states, emulator_backend, seed


def test_streaming_path_writes_destination_rows_and_records_failures(app_db, emulator):
    seed(app_db, tickets=40, products=25, bad_every=10)
    backend = emulator_backend(emulator)
    tickets = run_streaming(app_db, backend, get_workload("ticket_classification"), claimer="t")
    products = run_streaming(app_db, backend, get_workload("product_enrichment"), claimer="t")

    assert (tickets.requests, tickets.succeeded, dict(tickets.failed)) == (40, 36, {"invalid_input": 4})
    assert (products.requests, products.succeeded, dict(products.failed)) == (25, 23, {"invalid_input": 2})
    assert queue_states(app_db, "ticket_classification") == {"done": 36, "failed": 4}
    rows = app_db.execute("SELECT label, rationale, model, prompt_version FROM app.ticket_classifications").fetchall()
    assert len(rows) == 36
    workload = get_workload("ticket_classification")
    assert {r[3] for r in rows} == {workload.prompt_version}
    assert {r[0] for r in rows} <= set(workload.output.json_schema["properties"]["label"]["enum"])
    error = app_db.execute("SELECT error FROM app.llm_requests WHERE status = 'failed' LIMIT 1").fetchone()[0]
    assert error.startswith("invalid_input: ") and "column 'body' is empty" in error


def test_invalid_replies_fail_only_their_request(app_db, emulator):
    emulator.configure(malformed_rate=0.5)
    seed(app_db, tickets=30)
    summary = run_streaming(app_db, emulator_backend(emulator), get_workload("ticket_classification"), claimer="t")
    assert summary.failed.get("invalid_output", 0) > 0
    assert summary.succeeded + summary.failed["invalid_output"] == 30
    assert app_db.execute("SELECT count(*) FROM app.ticket_classifications").fetchone()[0] == summary.succeeded


def test_transient_api_errors_hand_the_request_back(app_db, emulator):
    emulator.add_fault(kind="status", endpoint="messages", status=529, count=3)
    seed(app_db, tickets=3)
    summary = run_streaming(app_db, emulator_backend(emulator, max_retries=0), get_workload("ticket_classification"),
                            claimer="t", limit=1)
    assert summary.deferred == 1 and summary.succeeded == 0
    assert queue_states(app_db, "ticket_classification") == {"pending": 3}
