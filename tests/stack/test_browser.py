"""The Airflow UI in a real browser: a finished night, its extra link, the Nightshift dashboard.

Headless Chromium from Debian's package, driven by Playwright with its executable path set
(no browser download). Screenshots of each step are kept in artifacts/ui/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from nightshift.paths import PROJECT_ROOT
from tests.helpers import seed

CHROMIUM = shutil.which("chromium")
ARTIFACTS = PROJECT_ROOT / "artifacts" / "ui"
DAG_ID = "nightshift_batch_ticket_classification"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")


@pytest.fixture
def browser_page(tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_a_user_follows_a_finished_night_from_its_task_to_the_dashboard(airflow_stack, app_db, browser_page):
    seed(app_db, tickets=40, bad_every=10)
    airflow_stack.forget_runs(DAG_ID)
    airflow_stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    airflow_stack.api("POST", f"/dags/{DAG_ID}/dagRuns",
                      json={"logical_date": None, "conf": {"poll_interval_seconds": 0.5, "max_requests_per_batch": 15}})
    # unpausing also creates the latest scheduled run: whichever run claims the queue does the night
    runs = airflow_stack.wait_until_idle(DAG_ID)
    assert {r["state"] for r in runs} == {"success"}
    run_id, requests, succeeded, failed, cost = app_db.execute(
        "SELECT airflow_run_id, requests, succeeded, failed, cost_usd FROM nightshift.runs "
        "WHERE dag_id = %s AND requests > 0", (DAG_ID,)).fetchone()
    run = {"dag_run_id": run_id}
    assert (requests, succeeded, failed) == (40, 36, 4)

    page = browser_page
    page.goto(airflow_stack.base_url + "/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admin")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Dags", exact=True).first.wait_for()
    shot(page, "1-home-after-login")

    page.goto(f"{airflow_stack.base_url}/dags/{DAG_ID}/runs/{quote(run['dag_run_id'], safe='')}/tasks/submit")
    page.get_by_text("SubmitBatchesOperator").first.wait_for()
    shot(page, "2-submit-task-log")
    page.get_by_role("tab", name="Details").or_(page.get_by_text("Details", exact=True)).first.click()
    link = page.get_by_role("link", name="Nightshift run").first
    link.wait_for()
    assert page.get_by_role("link", name="Anthropic Console").first.is_visible()
    shot(page, "3-submit-task-extra-links")
    href = link.get_attribute("href")
    assert href and "/nightshift/" in href

    page.goto(href if href.startswith("http") else airflow_stack.base_url + href)
    page.get_by_text(re.compile(r"\b40\b")).first.wait_for()
    shot(page, "4-dashboard-night")
    text = page.inner_text("body")
    for number in (str(requests), str(succeeded), str(failed)):
        assert re.search(rf"\b{number}\b", text), f"{number} not shown on the night's page"
    assert "invalid_input" in text
    assert f"{cost:.4f}"[:-1] in text or f"{cost:.2f}" in text  # the night's cost, as recorded in the ledger

    page.goto(airflow_stack.base_url + "/nightshift/")
    page.locator("svg").first.wait_for()
    shot(page, "5-dashboard-nights-chart")
    assert "ticket_classification" in page.inner_text("body")

    page.goto(airflow_stack.base_url + "/nightshift/failures?reason=invalid_input")
    shot(page, "6-failures")
    assert page.inner_text("body").count("invalid_input") >= failed
