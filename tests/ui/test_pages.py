"""The dashboard's HTML pages: the chart, the tables, the run page, the failures view, empty states."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.ui.support import PRODUCTS, TICKETS, client_for, move_night

pytestmark = pytest.mark.airflow


def chart(html: str, workload: str) -> str:
    """The SVG of one workload's chart."""
    match = re.search(rf"<h3>{workload}</h3>\s*(<svg.*?</svg>)", html, re.DOTALL)
    assert match, f"no chart for {workload}"
    return match.group(1)


def test_the_overview_charts_every_priced_night_per_workload(dashboard, app_db, two_nights, emulator):
    from nightshift.deployment import get_workload
    from tests.batch_night import run_night
    from tests.helpers import emulator_backend, seed

    seed(app_db, tickets=5)
    third = run_night(app_db, emulator_backend(emulator), get_workload(TICKETS), airflow_run_id="scheduled__3").run.run_pk
    move_night(app_db, two_nights.tickets, 6)
    move_night(app_db, third, 2)
    move_night(app_db, two_nights.products, 2)

    response = dashboard.get("/")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    tickets, products = chart(html, TICKETS), chart(html, PRODUCTS)
    # One bar (batch cost) and one point (streaming cost) per night that ran, none for the others.
    assert tickets.count('<rect class="cost"') == 2 and tickets.count('<circle class="streaming"') == 2
    assert products.count('<rect class="cost"') == 1 and products.count('<circle class="streaming"') == 1
    today = app_db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
    nights = re.findall(r'data-night="([0-9-]+)"', tickets)
    assert nights == [str(today.fromordinal(today.toordinal() - 6)), str(today.fromordinal(today.toordinal() - 2))]
    # The saving shows as the shaded gap between the batch bar and the streaming point.
    assert tickets.count('<rect class="saved"') == 2
    # Tooltips carry the figures.
    assert "saved $" in unescape(tickets)
    # The per-night table has a row per night, linked to its page.
    for run_pk in (two_nights.tickets, two_nights.products, third):
        assert f'<tr data-run="{run_pk}">' in html and f'href="/runs/{run_pk}"' in html


def test_the_overview_table_shows_the_ledgers_numbers(dashboard, app_db, two_nights):
    html = dashboard.get("/").text
    row = re.search(rf'<tr data-run="{two_nights.tickets}">(.*?)</tr>', html, re.DOTALL).group(1)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
    requests, succeeded, failed = app_db.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed') "
        "FROM nightshift.items WHERE run_pk = %s", (two_nights.tickets,)).fetchone()
    assert cells[1] == TICKETS and cells[3] == "succeeded"
    assert cells[4:9] == [str(requests), str(succeeded), str(failed), "2", "3"]  # retry rounds, batches
    cost = app_db.execute("SELECT cost_usd FROM nightshift.run_costs WHERE run_pk = %s",
                          (two_nights.tickets,)).fetchone()[0]
    assert cells[9] == f"${float(cost):.4f}"


def test_the_workload_filter_and_pagination_of_nights(dashboard, two_nights, monkeypatch):
    html = dashboard.get("/", params={"workload": PRODUCTS}).text
    assert re.findall(r'<tr data-run="(\d+)">', html) == [str(two_nights.products)]

    from nightshift.ui import app as dashboard_app

    monkeypatch.setattr(dashboard_app, "NIGHTS_PER_PAGE", 1)
    first, second = dashboard.get("/").text, dashboard.get("/", params={"page": 2}).text
    assert re.findall(r'<tr data-run="(\d+)">', first) == [str(two_nights.products)]
    assert re.findall(r'<tr data-run="(\d+)">', second) == [str(two_nights.tickets)]
    assert 'href="/?page=2" rel="next"' in first and 'href="/?page=1" rel="prev"' in second
    assert "page 1 of 2" in first


def test_a_run_page_shows_batches_rounds_and_failures(dashboard, app_db, two_nights, monkeypatch):
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__CONSOLE_BATCH_URL", "https://console.example/b/{batch_id}")
    html = dashboard.get(f"/runs/{two_nights.tickets}").text

    batch_ids = [b for (b,) in app_db.execute(
        "SELECT backend_batch_id FROM nightshift.batches WHERE run_pk = %s ORDER BY round, seq",
        (two_nights.tickets,))]
    assert len(batch_ids) == 3
    for batch_id in batch_ids:
        assert f'href="https://console.example/b/{batch_id}"' in html
    assert "retry 1" in html and "retry 2" in html
    for reason, count in app_db.execute("SELECT error_type, count(*) FROM nightshift.items WHERE run_pk = %s "
                                        "AND status = 'failed' GROUP BY 1", (two_nights.tickets,)):
        assert re.search(rf'reason={reason}">{reason}</a></td><td class="num">{count}</td>', html), reason
    assert f'href="/failures?run_pk={two_nights.tickets}"' in html
    assert f'href="/api/failures.csv?run_pk={two_nights.tickets}"' in html
    assert 'href="/dags/test_ticket_classification/runs/scheduled__tickets"' in html


def test_an_unknown_run_page_is_a_friendly_404(dashboard, two_nights):
    response = dashboard.get("/runs/424242")
    assert response.status_code == 404 and "No such night" in response.text


def test_the_failures_view_filters_paginates_and_links_the_csv(dashboard, app_db, two_nights, monkeypatch):
    html = dashboard.get("/failures", params={"workload": TICKETS, "reason": "invalid_input"}).text

    expected = [c for (c,) in app_db.execute(
        "SELECT custom_id FROM nightshift.items WHERE run_pk = %s AND error_type = 'invalid_input' "
        "ORDER BY request_id", (two_nights.tickets,))]
    assert re.findall(r'<td class="mono">(r\d+-q\d+)</td>', html) == expected
    assert f"{len(expected)} failed items" in html
    csv_href = unescape(re.search(r'<a href="([^"]+)" download>Download CSV</a>', html).group(1))
    assert urlsplit(csv_href).path == "/api/failures.csv"
    assert parse_qs(urlsplit(csv_href).query) == {"workload": [TICKETS], "reason": ["invalid_input"]}
    # The form keeps the chosen filters and offers every reason and workload.
    assert f'<option value="{TICKETS}" selected>' in html
    assert '<option value="invalid_input" selected>' in html
    assert '<option value="overloaded_error_after_retries"' in html

    from nightshift.ui import app as dashboard_app

    total = app_db.execute("SELECT count(*) FROM nightshift.items WHERE status = 'failed'").fetchone()[0]
    monkeypatch.setattr(dashboard_app, "FAILURES_PER_PAGE", 4)
    first = dashboard.get("/failures").text
    last = dashboard.get("/failures", params={"page": -(-total // 4)}).text
    assert total > 4
    assert len(re.findall(r'<td class="mono">r\d+-q\d+</td>', first)) == 4
    assert 'href="/failures?page=2" rel="next"' in first
    assert 'rel="next"' not in last and 'rel="prev"' in last


def test_failure_messages_are_escaped(dashboard, app_db, two_nights):
    app_db.execute("UPDATE nightshift.items SET error_message = '<script>alert(1)</script>' "
                   "WHERE run_pk = %s AND status = 'failed'", (two_nights.products,))
    app_db.commit()
    for path in ("/failures", f"/runs/{two_nights.products}"):
        html = dashboard.get(path).text
        assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_pages_forbid_scripts_and_foreign_framing(dashboard, two_nights):
    response = dashboard.get("/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert response.headers["x-frame-options"] == "SAMEORIGIN" and response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text


def test_inside_the_airflow_frame_the_page_says_how_to_open_outbound_links(dashboard, two_nights):
    framed = dashboard.get(f"/runs/{two_nights.tickets}", headers={"Sec-Fetch-Dest": "iframe"}).text
    assert "Open link in new tab" in framed
    assert "Open link in new tab" not in dashboard.get(f"/runs/{two_nights.tickets}").text


def test_an_airflow_run_resolves_to_its_night(dashboard, two_nights):
    response = dashboard.get("/airflow-run", params={"dag_id": "test_ticket_classification",
                                                     "run_id": "scheduled__tickets"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/runs/{two_nights.tickets}"
    other = dashboard.get("/airflow-run", params={"dag_id": "nightly_insights", "run_id": "x"})
    assert other.status_code == 404 and "No Nightshift night for this DAG run" in other.text


# Empty databases ----------------------------------------------------------------------------

EVERY_GET = ["/", "/failures", "/failures?workload=x&reason=y&since=2026-01-01", "/api/nights", "/api/series",
             "/api/failures", "/api/failures.csv"]


def test_no_nights_yet_is_a_friendly_state(dashboard, app_db):
    for path in EVERY_GET:
        assert dashboard.get(path).status_code == 200, path
    html = dashboard.get("/").text
    assert "No nights yet" in html and "no batch night has run" in html
    assert dashboard.get("/api/nights").json() == {"ledger_present": True, "total": 0, "limit": 50, "offset": 0,
                                                   "nights": []}
    assert dashboard.get("/api/series").json()["workloads"] == {}
    assert dashboard.get("/api/nights/1").status_code == 404


def test_a_database_without_the_ledger_schema_is_a_friendly_state(dashboard, app_db):
    app_db.execute("DROP SCHEMA nightshift CASCADE")
    app_db.commit()
    for path in EVERY_GET:
        assert dashboard.get(path).status_code == 200, path
    html = dashboard.get("/").text
    assert "No nights yet" in html and "nightshift db-init" in html
    assert "No nights yet" in dashboard.get("/failures").text
    assert dashboard.get("/api/nights").json()["ledger_present"] is False
    assert dashboard.get("/api/failures").json()["failures"] == []
    assert dashboard.get("/api/failures.csv").text.splitlines() == [
        "run_pk,workload,run_created_at,round,custom_id,source_key,request_id,error_type,error_message,failed_at"]
    assert dashboard.get("/api/nights/1").status_code == 404
    assert dashboard.get("/runs/1").status_code == 404
    assert dashboard.get("/airflow-run", params={"dag_id": "a", "run_id": "b"}).status_code == 404


def test_an_unreachable_database_is_503_not_500(viewer_token, pg_cluster):
    dsn = f"postgresql://nobody@127.0.0.1:{pg_cluster.port}/no_such_database_here"
    with client_for(dsn, viewer_token) as client:
        api = client.get("/api/nights")
        page = client.get("/")
        csv_response = client.get("/api/failures.csv")
    assert api.status_code == 503 and "cannot be reached" in api.json()["detail"]
    assert page.status_code == 503 and "The ledger is out of reach" in page.text
    assert csv_response.status_code == 503
    assert "nobody" not in page.text  # the DSN is not echoed to the browser
