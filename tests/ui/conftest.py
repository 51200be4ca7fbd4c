"""Fixtures of the dashboard tests: real nights in the ledger, Airflow's auth manager, real JWTs.

Nights are built by the real pipeline against the emulator (``tests.batch_night.run_night``);
tokens are signed by the auth manager Airflow's API server uses (the test profile's simple
auth manager). Validating a token reads Airflow's revoked-token table, so every test that
sends one needs the migrated metadata DB (``airflow_db``).
"""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from nightshift.deployment import get_workload
from tests.batch_night import run_night
from tests.helpers import emulator_backend, seed
from tests.ui.support import PRODUCTS, TICKETS, Nights, client_for, jwt_for


@pytest.fixture(scope="session")
def auth_manager():
    """Airflow's auth manager, initialised as the API server initialises it."""
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture
def viewer_token(airflow_db, auth_manager) -> str:
    """The least role that may read DAG runs."""
    return jwt_for(auth_manager, role="VIEWER")


@pytest.fixture
def dashboard(app_db, app_dsn, viewer_token) -> TestClient:
    """The dashboard app on this test's application database, as a logged-in viewer."""
    with client_for(app_dsn, viewer_token) as client:
        yield client


@pytest.fixture
def two_nights(app_db: psycopg.Connection, emulator) -> Nights:
    """One ticket night with retry rounds and several failure reasons, then one product night.

    Tickets: some rows are bad (``invalid_input``, before any API call), two items come back
    ``overloaded_error`` once (recovered in retry round 1), one is an ``invalid_request``
    (final) and one is overloaded every time (``overloaded_error_after_retries`` after round 2).
    """
    seed(app_db, tickets=24, products=12, bad_every=6)
    emulator.add_fault(kind="item_error", error_type="overloaded_error", custom_id=r".*-q(2|3)$", count=2)
    emulator.add_fault(kind="item_error", error_type="invalid_request_error", custom_id=r".*-q5$")
    emulator.add_fault(kind="item_error", error_type="overloaded_error", custom_id=r".*-q7$")
    backend = emulator_backend(emulator)
    tickets = run_night(app_db, backend, get_workload(TICKETS), airflow_run_id="scheduled__tickets")
    products = run_night(app_db, backend, get_workload(PRODUCTS), airflow_run_id="scheduled__products")
    return Nights(tickets.run.run_pk, products.run.run_pk)
