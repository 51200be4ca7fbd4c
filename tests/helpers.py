"""Small helpers shared by the integration and DAG tests (no fixtures here)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import anthropic
import psycopg

from nightshift.backends.anthropic import AnthropicBackend
from nightshift.paths import PROJECT_ROOT
from nightshift.workloads.definition import Workload, load_workload_file
from nightshift_dev import demo_data


def seed(conn: psycopg.Connection, *, tickets: int = 0, products: int = 0, bad_every: int = 0) -> demo_data.DemoCounts:
    return demo_data.generate(conn, tickets=tickets, products=products, bad_every=bad_every, seed=11)


def shipped_workload_on(model: str, folder: Path, monkeypatch, name: str = "ticket_classification") -> Workload:
    """A shipped workload as a team runs it on ``model``: its file, with that model, and the prompts in
    ``folder``, which becomes the deployment's workloads folder for the test."""
    folder.mkdir()
    shutil.copytree(PROJECT_ROOT / "workloads" / "prompts", folder / "prompts")
    text = (PROJECT_ROOT / "workloads" / f"{name}.yaml").read_text(encoding="utf-8")
    (folder / f"{name}.yaml").write_text(re.sub(r"(?m)^model: .*$", f"model: {model}", text), encoding="utf-8")
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER", str(folder))
    workload = load_workload_file(folder / f"{name}.yaml")
    assert workload.model == model
    return workload


def sdk_client(emulator, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=emulator.url, api_key=emulator.api_key, **kwargs)


def emulator_backend(emulator, *, call_budget=None, **kwargs) -> AnthropicBackend:
    """The Anthropic backend over an SDK client that talks HTTP to the emulator (``kwargs``: the client's)."""
    return AnthropicBackend(sdk_client(emulator, **kwargs), call_budget=call_budget)


def queue_states(conn: psycopg.Connection, workload: str) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT status, count(*) FROM app.llm_requests WHERE workload = %s GROUP BY status", (workload,)).fetchall())


def destination_rows(conn: psycopg.Connection, table: str, key: str) -> list[tuple]:
    """Destination rows without delivery metadata (request_id and the written-at timestamp)."""
    columns = [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = %s "
        "AND column_name NOT IN ('request_id', 'classified_at', 'enriched_at') ORDER BY ordinal_position",
        (table,))]
    return conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key}").fetchall()


def assert_every_request_terminal(conn: psycopg.Connection, run_pk: int, destination: str, key: str) -> None:
    """The pipeline's promise, in SQL: succeeded with exactly one row, or failed with a reason."""
    open_items = conn.execute(
        "SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND status NOT IN ('succeeded', 'failed')",
        (run_pk,)).fetchone()[0]
    assert open_items == 0, f"{open_items} items of run {run_pk} are not terminal"
    reasonless = conn.execute(
        "SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'failed' AND error_type IS NULL",
        (run_pk,)).fetchone()[0]
    assert reasonless == 0
    missing = conn.execute(
        f"SELECT count(*) FROM nightshift.items i LEFT JOIN {destination} d ON d.{key}::text = i.source_key "
        "WHERE i.run_pk = %s AND i.status = 'succeeded' AND d.{key} IS NULL".replace("{key}", key),
        (run_pk,)).fetchone()[0]
    assert missing == 0, f"{missing} succeeded items have no destination row"
    duplicates = conn.execute(
        f"SELECT count(*) - count(DISTINCT {key}) FROM {destination}").fetchone()[0]
    assert duplicates == 0
    queue_open = conn.execute(
        "SELECT count(*) FROM nightshift.items i JOIN app.llm_requests q USING (request_id) "
        "WHERE i.run_pk = %s AND q.status NOT IN ('done', 'failed')", (run_pk,)).fetchone()[0]
    assert queue_open == 0, f"{queue_open} queue rows of run {run_pk} are still open"
