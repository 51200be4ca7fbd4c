"""Helpers of the dashboard tests (no fixtures here)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from fastapi.testclient import TestClient

TICKETS = "ticket_classification"
PRODUCTS = "product_enrichment"


def jwt_for(auth_manager, *, username: str = "night-owl", role: str | None = "VIEWER",
            expiration_time_in_seconds: int | None = None) -> str:
    """A JWT exactly as Airflow issues one at login (``generate_jwt`` of the auth manager)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    kwargs = {} if expiration_time_in_seconds is None else {"expiration_time_in_seconds": expiration_time_in_seconds}
    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role), **kwargs)


def client_for(dsn: str, token: str | None = None) -> TestClient:
    from nightshift.ui.app import create_app

    client = TestClient(create_app(dsn))
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


@dataclass
class Nights:
    tickets: int
    products: int


def move_night(conn: psycopg.Connection, run_pk: int, days_ago: int) -> None:
    """Date a real night ``days_ago`` days back, at noon UTC (the series groups nights by the day they ran)."""
    conn.execute("UPDATE nightshift.runs SET created_at = "
                 "(((now() AT TIME ZONE 'UTC')::date - %s) + time '12:00') AT TIME ZONE 'UTC' "
                 "WHERE run_pk = %s", (days_ago, run_pk))
    conn.commit()


def sql_one(conn: psycopg.Connection, query: str, *params) -> dict:
    cur = conn.execute(query, params)
    return dict(zip([c.name for c in cur.description], cur.fetchone()))
