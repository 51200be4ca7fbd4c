"""The dashboard's model pages (#17): a trial page, a workload's trials, a night's items and cost by model."""

from __future__ import annotations

import re
from html import unescape

import pytest

from nightshift.migration import trial
from nightshift.migration.trial_run import run_trial
from tests.batch_night import run_night
from tests.helpers import emulator_backend, seed, shipped_workload_on

pytestmark = pytest.mark.airflow

CURRENT, CANDIDATE = "claude-sonnet-5-5", "claude-haiku-5-5"


@pytest.fixture
def tickets(tmp_path, monkeypatch):
    """Ticket classification on Sonnet 5.5, from a workloads folder of the test's own."""
    return shipped_workload_on(CURRENT, tmp_path / "workloads", monkeypatch)


@pytest.fixture
def reported_trial(app_db, emulator, tickets) -> dict:
    """A real trial: 120 tickets the current model wrote, 100 of them answered again on the candidate,
    which agrees on 90% of labels."""
    backend = emulator_backend(emulator)
    seed(app_db, tickets=120)
    assert run_night(app_db, backend, tickets, airflow_run_id="sonnet").summary.succeeded == 120
    emulator.configure(model_profiles={CANDIDATE: {"agreement": {"label": 0.9}}})
    report = run_trial(app_db, backend, tickets, trial.TrialRequest(CANDIDATE, sample=100, seed=5),
                       sleep=emulator.advance)
    return report


def text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def section(html: str, css_class: str) -> str:
    match = re.search(rf'<(table|section) class="{css_class}"[^>]*>(.*?)</\1>', html, re.DOTALL)
    assert match, f"no {css_class} on the page"
    return match.group(2)


def test_the_trial_page_shows_agreement_confusion_cost_and_the_gates_verdict(dashboard, reported_trial):
    report = reported_trial
    pk = report["trial_pk"]
    response = dashboard.get(f"/trials/{pk}")
    assert response.status_code == 200
    html = response.text

    agreement, low, high = report["agreement"], report["agreement_low"], report["agreement_high"]
    assert f'<b class="agreement">{100 * agreement:.1f}%</b>' in html
    assert f'<b class="interval">{100 * low:.1f}% – {100 * high:.1f}%</b>' in html
    fields = section(html, "fields")
    label = report["fields"]["label"]
    assert text(re.search(r'<tr data-field="label">(.*?)</tr>', fields, re.DOTALL).group(1)) == (
        f"label {label['agreeing']} {100 * label['agreement']:.1f}% {100 * label['low']:.1f}% – "
        f"{100 * label['high']:.1f}% exact")
    # The confusion table: a row per current label, its cells the candidate's answers, the diagonal marked.
    confusion = section(html, "confusion")
    for current, answers in report["confusion"]["label"].items():
        row = re.search(rf'<tr data-label="{current}">(.*?)</tr>', confusion, re.DOTALL).group(1)
        if current in answers:
            assert f'<td class="num same">{answers[current]}</td>' in row
        else:
            assert "same" not in row
        assert text(row).endswith(str(sum(answers.values())))
    # Cost per model, from the report's API usage, and the monthly projection.
    costs = section(html, "costs")
    for side in ("current", "candidate"):
        cost = report["costs"][side]
        row = re.search(rf'<tr data-model="{cost["model"]}">(.*?)</tr>', costs, re.DOTALL).group(1)
        assert f"${cost['sample_usd']:.4f}" in row
    assert report["costs"]["projection"]["candidate_monthly_usd"] > 0
    # The gate's verdict against the workload's min_agreement (0.98): 100 keys at ~90% do not clear it.
    gate = text(section(html, "gate"))
    verdict = (f"trial #{pk}: agreement {100 * agreement:.1f}% ({100 * low:.1f}–{100 * high:.1f}%, "
               "n=100) does not clear 98.00%")
    assert gate.startswith(f"The switch gate Refused against 98.00%: {verdict}")
    api = dashboard.get(f"/api/trials/{pk}").json()
    assert api["gate"]["clears"] is False and api["gate"]["reason"].startswith(verdict)
    assert api["trial"]["report"]["confusion"] == report["confusion"]


def test_the_trial_page_names_the_switch_that_rests_on_it_and_keeps_the_workloads_threshold(
        dashboard, app_db, reported_trial, tickets):
    from nightshift.migration.switch import switch_model

    pk = reported_trial["trial_pk"]
    switch_model(app_db, tickets, CANDIDATE, min_agreement=0.5)
    html = dashboard.get(f"/trials/{pk}").text
    gate = text(section(html, "gate"))
    assert "Refused against 98.00%" in gate  # the page judges against the workload's own min_agreement
    switch_pk = app_db.execute("SELECT switch_pk FROM nightshift.workload_models WHERE trial_pk = %s",
                               (pk,)).fetchone()[0]
    assert f"Switch #{switch_pk} to claude-haiku-5-5 rests on this trial" in gate


def test_a_trial_that_clears_the_gate_says_the_switch_would_go(dashboard, app_db, emulator, tickets):
    """200 keys, all agreeing: the interval's low end (98.1%) reaches the workload's 98%."""
    backend = emulator_backend(emulator)
    seed(app_db, tickets=200)
    assert run_night(app_db, backend, tickets, airflow_run_id="sonnet").summary.succeeded == 200
    report = run_trial(app_db, backend, tickets, trial.TrialRequest(CANDIDATE, sample=200, seed=1),
                       sleep=emulator.advance)
    assert report["agreement"] == 1.0
    gate = text(section(dashboard.get(f"/trials/{report['trial_pk']}").text, "gate"))
    assert gate == (f"The switch gate Clears 98.00% (migration.min_agreement): trial #{report['trial_pk']}: "
                    f"agreement 100.0% ({100 * report['agreement_low']:.1f}–100.0%, n=200) clears 98.00%. "
                    f"nightshift switch --workload {tickets.name} --model {CANDIDATE} would switch.")


def test_a_workloads_trials_are_listed_and_linked_from_its_nights(dashboard, reported_trial, tickets):
    pk = reported_trial["trial_pk"]
    nights = dashboard.get("/", params={"workload": tickets.name}).text
    assert f'href="/trials?workload={tickets.name}"' in nights
    listing = dashboard.get("/trials", params={"workload": tickets.name}).text
    row = re.search(rf'<tr data-trial="{pk}">(.*?)</tr>', listing, re.DOTALL).group(1)
    assert f'href="/trials/{pk}"' in row
    assert text(row).startswith(f"#{pk} {tickets.name} {CURRENT} → {CANDIDATE} reported 100 "
                                f"{100 * reported_trial['agreement']:.1f}%")
    assert 'data-trial' not in dashboard.get("/trials", params={"workload": "product_enrichment"}).text


def test_a_night_shows_its_items_and_cost_by_model(dashboard, app_db, reported_trial):
    """The current model's night and the trial's run on the candidate, each by the model its items went to."""
    nights = app_db.execute(
        "SELECT r.run_pk, r.model, count(*), count(*) FILTER (WHERE i.status = 'succeeded'), "
        "count(*) FILTER (WHERE i.status = 'failed'), sum(i.cost_usd) "
        "FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) GROUP BY 1, 2 ORDER BY 1").fetchall()
    assert [n[1] for n in nights] == [CURRENT, CANDIDATE]
    for run_pk, model, items, succeeded, failed, cost in nights:
        html = dashboard.get(f"/runs/{run_pk}").text
        rows = re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', section(html, "by-model"), re.DOTALL)
        expected = f"{model} {items} {succeeded} {failed} ${float(cost):.4f}"
        assert [(m, text(r)) for m, r in rows] == [(model, expected)]
        assert dashboard.get(f"/api/nights/{run_pk}").json()["models"] == [
            {"model": model, "items": items, "succeeded": succeeded, "failed": failed,
             "cost_usd": pytest.approx(float(cost))}]


def test_a_cascade_night_shows_each_models_items_and_cost(dashboard, app_db, emulator):
    """Haiku 5.5 breaks its reply to three tickets: they escalate to Sonnet 5.5, whose cost is kept apart
    from what Haiku was paid for its broken attempts."""
    from nightshift.deployment import get_workload
    from nightshift.workloads.definition import Workload

    raw = get_workload("ticket_classification").model_dump(by_alias=True, exclude_defaults=True)
    raw.pop("model")
    raw["cascade"] = {"models": [CANDIDATE, CURRENT], "escalate_on": {"invalid_output": True}}
    cascade = Workload.model_validate(raw)
    seed(app_db, tickets=20)
    emulator.add_fault(kind="perturb", mode="not_json", custom_id=r"r1-q(3|8|13)", count=3)
    night = run_night(app_db, emulator_backend(emulator), cascade)
    run_pk = night.run.run_pk
    by_model = night.summary.cost_by_model
    assert by_model[CURRENT]["items_answered"] == 3

    html = dashboard.get(f"/runs/{run_pk}").text
    table = section(html, "by-model")
    rows = {m: text(r) for m, r in re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', table, re.DOTALL)}
    for model, answered in ((CANDIDATE, 17), (CURRENT, 3)):
        assert by_model[model]["items_answered"] == answered
        assert rows[model] == f"{model} {answered} {answered} 0 ${by_model[model]['cost_usd']:.4f}"
    alone = app_db.execute("SELECT last_model_alone_usd FROM nightshift.runs WHERE run_pk = %s",
                           (run_pk,)).fetchone()[0]
    assert (f"The same night on the cascade's last model alone would have cost ${float(alone):.4f}"
            in text(html))


def test_an_unknown_trial_is_a_friendly_404(dashboard, reported_trial):
    response = dashboard.get("/trials/424242")
    assert response.status_code == 404 and "no model trial #424242" in response.text
