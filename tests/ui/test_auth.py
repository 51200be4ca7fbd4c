"""No anonymous access: every route of the dashboard sits behind Airflow's own authentication."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.routing import APIRoute

from tests.ui.support import client_for, jwt_for

pytestmark = pytest.mark.airflow

PATH_VALUES = {"{run_pk}": "1", "{trial_pk}": "1"}
QUERY = {"/airflow-run": "?dag_id=nightshift_batch_ticket_classification&run_id=manual__1"}


def every_route() -> list[str]:
    """Every route the app serves, with its path parameters filled in (new routes join automatically)."""
    from nightshift.ui.app import create_app

    paths = []
    for route in create_app("postgresql://unused@127.0.0.1:1/none").routes:
        if isinstance(route, APIRoute):
            path = route.path
            for placeholder, value in PATH_VALUES.items():
                path = path.replace(placeholder, value)
            paths.append(path + QUERY.get(route.path, ""))
    return paths


ROUTES = every_route()
API = [p for p in ROUTES if p.startswith("/api/")]
PAGES = [p for p in ROUTES if not p.startswith("/api/")]


def test_the_routes_under_test_are_all_of_them():
    assert {"/api/nights", "/api/nights/1", "/api/series", "/api/failures", "/api/failures.csv"} <= set(API)
    assert {"/", "/runs/1", "/failures"} <= set(PAGES) and any(p.startswith("/airflow-run?") for p in PAGES)


@pytest.fixture
def unreachable_db(pg_cluster) -> str:
    """A DSN nothing answers: an anonymous request must be refused before the app opens a connection."""
    return f"postgresql://nobody@127.0.0.1:{pg_cluster.port}/no_such_database_here"


@pytest.mark.parametrize("path", API)
def test_anonymous_api_calls_get_401(unreachable_db, path):
    with client_for(unreachable_db) as client:
        response = client.get(path)
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "Not authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_pages_redirect_to_airflows_login_and_back(unreachable_db, auth_manager, path):
    with client_for(unreachable_db) as client:
        response = client.get(path, follow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == urlsplit(auth_manager.get_url_login()).path  # Airflow's own login page
    assert parse_qs(location.query)["next"] == [f"http://testserver{path}"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_no_anonymous_api_description(unreachable_db, path):
    with client_for(unreachable_db) as client:
        assert client.get(path).status_code == 404


def test_a_malformed_token_is_refused(app_dsn, airflow_db):
    with client_for(app_dsn, "not-a-jwt") as client:
        assert client.get("/api/nights").status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 302


def test_a_token_signed_with_another_key_is_refused(app_dsn, airflow_db):
    import jwt

    forged = jwt.encode({"sub": "admin", "role": "ADMIN", "aud": "apache-airflow"}, "not-the-secret-" * 5,
                        algorithm="HS512")
    with client_for(app_dsn, forged) as client:
        assert client.get("/api/nights").status_code == 403


def test_an_expired_token_is_refused(app_dsn, airflow_db, auth_manager):
    expired = jwt_for(auth_manager, expiration_time_in_seconds=-3600)
    with client_for(app_dsn, expired) as client:
        response = client.get("/api/nights")
        page = client.get("/", follow_redirects=False)
    assert response.status_code == 401 and response.json()["detail"] == "Token Expired"
    assert page.status_code == 302


@pytest.mark.parametrize("path", ROUTES)
def test_a_viewer_token_opens_every_route(app_db, app_dsn, viewer_token, path):
    with client_for(app_dsn, viewer_token) as client:
        response = client.get(path, follow_redirects=False)
    # The empty ledger has no night 1, no trial 1 and no such Airflow run: a 404 page, not a refusal.
    expected = 404 if path.startswith(("/api/nights/1", "/runs/1", "/airflow-run", "/api/trials/1",
                                       "/trials/1")) else 200
    assert response.status_code == expected, response.text[:300]


def test_the_ui_cookie_opens_the_dashboard_like_a_bearer_token(app_db, app_dsn, viewer_token):
    with client_for(app_dsn) as client:
        client.cookies.set("_token", viewer_token)
        assert client.get("/").status_code == 200
        assert client.get("/api/nights").status_code == 200
        assert client.get("/api/failures.csv").status_code == 200
        # As in Airflow's API, an explicit (bad) Authorization header wins over the cookie.
        assert client.get("/api/nights", headers={"Authorization": "Bearer nope"}).status_code == 403


@pytest.mark.parametrize("path", ROUTES)
def test_a_user_who_may_not_read_dag_runs_gets_403_not_a_login_loop(app_db, app_dsn, airflow_db, auth_manager, path):
    token = jwt_for(auth_manager, username="no-role", role=None)
    with client_for(app_dsn, token) as client:
        response = client.get(path, follow_redirects=False)
    assert response.status_code == 403
    if not path.startswith("/api/"):
        assert "Not allowed" in response.text and "read DAG runs" in response.text
