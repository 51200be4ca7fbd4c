"""The model switch gate and the model in force at run time (#17)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from nightshift.batch.ledger import ensure_run
from nightshift.deployment import get_workload
from nightshift.ledger import model_switches, trials
from nightshift.ledger.status import RunMode
from nightshift.migration.switch import SwitchRefused, switch_model
from nightshift.routing import SwitchedModelUnfit, model_in_force
from nightshift.streaming import run_streaming
from nightshift.workloads.definition import Workload
from tests.batch_night import run_night
from tests.helpers import emulator_backend, seed, shipped_workload_on

PRODUCTS = get_workload("product_enrichment")  # claude-sonnet-5-5 in its file
TICKETS = get_workload("ticket_classification")  # claude-haiku-5-5 in its file
CANDIDATE = "claude-haiku-5-5"


def reported_trial(conn, workload, candidate: str, *, agreement: float, low: float, high: float, n: int,
                   current: str | None = None) -> int:
    """A reported trial, recorded through the trial ledger as the trial runner records one."""
    run = ensure_run(conn, workload.with_model(candidate), dag_id=f"trial_{workload.name}",
                     airflow_run_id=f"trial-{candidate}-{agreement}-{current}", mode=RunMode.TRIAL)
    trial = trials.create(conn, workload=workload.name, current_model=current or workload.model,
                          candidate_model=candidate, run_pk=run.run_pk, params={})
    trials.record_sample(conn, trial.trial_pk, n, {})
    trials.record_report(conn, trial.trial_pk, keys_compared=n, keys_agreeing=round(agreement * n),
                         agreement=Decimal(str(agreement)), low=Decimal(str(low)), high=Decimal(str(high)),
                         report={})
    conn.commit()
    return trial.trial_pk


@pytest.fixture
def tickets(tmp_path, monkeypatch):
    """Ticket classification as a team runs it on Sonnet 5.5, from a workloads folder of the test's own."""
    return shipped_workload_on(PRODUCTS.model, tmp_path / "workloads", monkeypatch)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    from nightshift.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_done_means_real_trials_at_093_and_099_against_098(app_db, app_dsn, emulator, anthropic_conn,
                                                         tickets, capsys):
    """#17: the gate refuses a switch at 0.93 against min_agreement 0.98 and accepts it at 0.99; the recorded
    evidence names the trial. Both trials are real: 2,000 keys through the candidate's batch path."""
    seed(app_db, tickets=2_000)
    night = run_night(app_db, emulator_backend(emulator), tickets, airflow_run_id="sonnet")
    assert night.summary.succeeded == 2_000
    name, dsn = tickets.name, ("--dsn", app_dsn)
    trial_args = ("trial", "--workload", name, "--candidate", CANDIDATE, "--sample", "2000", "--seed", "1",
                  *dsn)

    emulator.configure(model_profiles={CANDIDATE: {"agreement": {"label": 0.93}}})
    assert cli(capsys, *trial_args)[0] == 0
    low = app_db.execute("SELECT trial_pk, agreement, agreement_low, agreement_high "
                         "FROM nightshift.model_trials ORDER BY trial_pk DESC LIMIT 1").fetchone()
    code, _, err = cli(capsys, "switch", "--workload", name, "--model", CANDIDATE, *dsn)
    assert code == 1
    assert err.strip() == (
        "refusing to switch ticket_classification from claude-sonnet-5-5 to claude-haiku-5-5: "
        f"trial #{low[0]}: agreement {100 * low[1]:.1f}% ({100 * low[2]:.1f}–{100 * low[3]:.1f}%, n=2,000) "
        "does not clear 98.00% (migration.min_agreement)")
    assert low[2] <= Decimal("0.93") <= low[3]
    assert model_switches.latest_switch(app_db, name) is None

    emulator.configure(model_profiles={CANDIDATE: {"agreement": {"label": 0.99}}})
    assert cli(capsys, *trial_args)[0] == 0
    high = app_db.execute("SELECT trial_pk, agreement, agreement_low FROM nightshift.model_trials "
                          "ORDER BY trial_pk DESC LIMIT 1").fetchone()
    code, out, err = cli(capsys, "switch", "--workload", name, "--model", CANDIDATE, *dsn)
    assert code == 0, err
    moved = tickets.with_model(CANDIDATE)
    assert out.startswith("ticket_classification switched from claude-sonnet-5-5 to claude-haiku-5-5: "
                          f"trial #{high[0]}: agreement {100 * high[1]:.1f}%")
    assert out.strip().endswith(f"prompt version {tickets.prompt_version} → {moved.prompt_version}")
    recorded = app_db.execute(
        "SELECT model, from_model, trial_pk, agreement, agreement_low, sample_size, prompt_version, "
        "report ->> 'trial_pk' FROM nightshift.workload_models WHERE workload = %s", (name,)).fetchall()
    assert recorded == [(CANDIDATE, tickets.model, high[0], high[1], high[2], 2_000, moved.prompt_version,
                         str(high[0]))]

    # The next night runs on the switched model: its run, its requests and its rows name it.
    seed(app_db, tickets=10)
    night = run_night(app_db, emulator_backend(emulator), model_in_force(app_db, tickets),
                      airflow_run_id="haiku")
    assert night.summary.succeeded == 10
    assert app_db.execute("SELECT model, prompt_version FROM nightshift.runs WHERE run_pk = %s",
                          (night.run.run_pk,)).fetchone() == (CANDIDATE, moved.prompt_version)
    assert app_db.execute(
        "SELECT i.model, d.model, d.prompt_version, count(*) FROM nightshift.items i "
        "JOIN app.ticket_classifications d ON d.ticket_id::text = i.source_key WHERE i.run_pk = %s "
        "GROUP BY 1, 2, 3",
        (night.run.run_pk,)).fetchall() == [(CANDIDATE, CANDIDATE, moved.prompt_version, 10)]


def test_the_gate_says_its_numbers_and_records_the_trial_it_rests_on(app_db):
    low_trial = reported_trial(app_db, PRODUCTS, CANDIDATE, agreement=0.931, low=0.919, high=0.941,
                               n=2000)
    with pytest.raises(SwitchRefused) as refused:
        switch_model(app_db, PRODUCTS, CANDIDATE)
    assert str(refused.value) == (
        "refusing to switch product_enrichment from claude-sonnet-5-5 to claude-haiku-5-5: "
        f"trial #{low_trial}: agreement 93.1% (91.9–94.1%, n=2,000) does not clear 98.00% "
        "(migration.min_agreement)")
    assert model_switches.latest_switch(app_db, PRODUCTS.name) is None
    assert model_in_force(app_db, PRODUCTS) is PRODUCTS

    high_trial = reported_trial(app_db, PRODUCTS, CANDIDATE, agreement=0.99, low=0.985, high=0.993,
                                n=2000)
    message = switch_model(app_db, PRODUCTS, CANDIDATE)

    moved = PRODUCTS.with_model(CANDIDATE)
    assert message == (
        "product_enrichment switched from claude-sonnet-5-5 to claude-haiku-5-5: "
        f"trial #{high_trial}: agreement 99.0% (98.5–99.3%, n=2,000) clears 98.00%; "
        f"prompt version {PRODUCTS.prompt_version} → {moved.prompt_version}")
    recorded = model_switches.latest_switch(app_db, PRODUCTS.name)
    assert (recorded.model, recorded.from_model, recorded.trial_pk) == (CANDIDATE, PRODUCTS.model,
                                                                        high_trial)
    assert (recorded.agreement, recorded.agreement_low, recorded.sample_size) == (
        Decimal("0.99"), Decimal("0.985"), 2000)
    assert recorded.prompt_version == moved.prompt_version
    assert model_in_force(app_db, PRODUCTS).model == CANDIDATE


def test_a_point_estimate_that_clears_with_an_interval_that_does_not_asks_for_a_larger_sample(app_db):
    reported_trial(app_db, PRODUCTS, CANDIDATE, agreement=0.985, low=0.962, high=0.995, n=200)
    with pytest.raises(SwitchRefused, match=r"agreement 98\.5% \(96\.2–99\.5%, n=200\) does not clear "
                                            r"98\.00% \(migration.min_agreement\); the point estimate clears "
                                            r"it but the interval's low end does not: a larger sample would "
                                            r"decide"):
        switch_model(app_db, PRODUCTS, CANDIDATE)
    assert "switched" in switch_model(app_db, PRODUCTS, CANDIDATE, min_agreement=0.96)


def test_the_gate_needs_a_trial_against_the_model_in_force(app_db):
    with pytest.raises(SwitchRefused, match="no reported trial of claude-haiku-5-5 for product_enrichment; "
                                            "run nightshift trial --workload product_enrichment "
                                            "--candidate claude-haiku-5-5 first"):
        switch_model(app_db, PRODUCTS, CANDIDATE)
    reported_trial(app_db, PRODUCTS, CANDIDATE, agreement=0.99, low=0.985, high=0.993, n=2000,
                   current="claude-opus-5-5")
    with pytest.raises(SwitchRefused, match=r"compared it with claude-opus-5-5, but product_enrichment runs "
                                            r"on claude-sonnet-5-5 now; run a new trial"):
        switch_model(app_db, PRODUCTS, CANDIDATE)


def test_the_cli_prints_the_refusal_and_the_switch(app_db, capsys):
    from nightshift.cli import main

    reported_trial(app_db, PRODUCTS, CANDIDATE, agreement=0.931, low=0.919, high=0.941, n=2000)
    assert main(["switch", "--workload", PRODUCTS.name, "--model", CANDIDATE]) == 1
    assert "n=2,000) does not clear 98.00%" in capsys.readouterr().err
    assert main(["switch", "--workload", PRODUCTS.name, "--model", CANDIDATE, "--min-agreement",
                 "0.9"]) == 0
    assert "switched from claude-sonnet-5-5 to claude-haiku-5-5" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["switch", "--workload", PRODUCTS.name, "--model", CANDIDATE, "--to", "batch"])
    assert "not allowed with argument" in capsys.readouterr().err


def switched(conn) -> None:
    reported_trial(conn, PRODUCTS, CANDIDATE, agreement=0.99, low=0.985, high=0.993, n=2000)
    switch_model(conn, PRODUCTS, CANDIDATE)


def test_a_revert_goes_back_to_the_files_model_and_is_recorded(app_db):
    switched(app_db)
    message = switch_model(app_db, PRODUCTS, PRODUCTS.model)
    assert message == ("product_enrichment switched back from claude-haiku-5-5 to claude-sonnet-5-5 (the "
                       "model its file declares); prompt version "
                       f"{PRODUCTS.with_model(CANDIDATE).prompt_version} → {PRODUCTS.prompt_version}")
    assert model_in_force(app_db, PRODUCTS) is PRODUCTS
    history = model_switches.switches(app_db, PRODUCTS.name)
    assert [(s.model, s.from_model, s.trial_pk is None) for s in history] == [
        (PRODUCTS.model, PRODUCTS.model, True), (CANDIDATE, PRODUCTS.model, False)]
    again = switch_model(app_db, PRODUCTS, PRODUCTS.model)
    assert again == "product_enrichment already runs on claude-sonnet-5-5, the model its file declares"


def test_once_the_file_declares_another_model_the_file_wins_with_a_warning(app_db, caplog):
    switched(app_db)
    edited = PRODUCTS.with_model("claude-opus-5-5")  # the team edited the file since
    with caplog.at_level(logging.WARNING, logger="nightshift.routing"):
        assert model_in_force(app_db, edited) is edited
    assert "the switch to claude-haiku-5-5" in caplog.text
    assert ("was made from claude-sonnet-5-5, but the file now declares claude-opus-5-5: the file wins and "
            "the switch no longer applies") in caplog.text


def test_a_file_change_the_switched_model_cannot_run_fails_naming_the_switch_and_the_way_back(app_db):
    raw = {**PRODUCTS.model_dump(by_alias=True, exclude_defaults=True), "max_tokens": 4000}
    raw.pop("effort")
    plain = Workload.model_validate(raw)  # Sonnet 5.5 at its default effort: Haiku 4.5 can run it
    reported_trial(app_db, plain, "claude-haiku-4-5", agreement=0.995, low=0.99, high=0.997, n=2000)
    switch_model(app_db, plain, "claude-haiku-4-5")
    assert model_in_force(app_db, plain).model == "claude-haiku-4-5"
    # The team sets an effort in the file, still on Sonnet 5.5: Haiku 4.5 has no effort setting.
    edited = Workload.model_validate({**raw, "effort": "low"})
    switch_pk = model_switches.latest_switch(app_db, PRODUCTS.name).switch_pk
    with pytest.raises(SwitchedModelUnfit) as unfit:
        model_in_force(app_db, edited)
    assert str(unfit.value).startswith(
        "workload 'product_enrichment' cannot run on claude-haiku-4-5: effort low: claude-haiku-4-5 has no "
        f"effort setting. It runs on claude-haiku-4-5 by model switch #{switch_pk} (")
    assert str(unfit.value).endswith("change the file back, or switch back with `nightshift switch "
                                     "--workload product_enrichment --model claude-sonnet-5-5`")


def cascade_of_tickets() -> Workload:
    """The ticket classifier as a cascade (Haiku 5.5, then Sonnet 5.5), as its file would declare it."""
    raw = TICKETS.model_dump(by_alias=True, exclude_defaults=True)
    raw.pop("model")
    raw["cascade"] = {"models": [TICKETS.model, PRODUCTS.model], "escalate_on": {"invalid_output": True}}
    return Workload.model_validate(raw)


def test_a_cascade_is_not_switched_by_the_gate_and_a_switch_made_before_it_no_longer_applies(
        app_db, caplog):
    cascade = cascade_of_tickets()
    with pytest.raises(SwitchRefused, match=r"^refusing to switch ticket_classification to "
                                            r"claude-sonnet-5-5: it declares a cascade of models; edit the "
                                            r"cascade in ticket_classification.yaml instead$"):
        switch_model(app_db, cascade, PRODUCTS.model)
    # A switch recorded while the file named one model: once the file declares a cascade, the cascade runs.
    reported_trial(app_db, TICKETS, PRODUCTS.model, agreement=0.995, low=0.99, high=0.997, n=2000)
    switch_model(app_db, TICKETS, PRODUCTS.model)
    assert model_in_force(app_db, TICKETS).model == PRODUCTS.model
    with caplog.at_level(logging.WARNING, logger="nightshift.routing"):
        assert model_in_force(app_db, cascade) is cascade
    assert "the file now declares a cascade; the recorded switch to claude-sonnet-5-5" in caplog.text


def test_after_the_switch_a_backfill_redoes_the_old_models_rows_and_streaming_follows(app_db, emulator):
    backend = emulator_backend(emulator)
    seed(app_db, products=8)
    run_night(app_db, backend, model_in_force(app_db, PRODUCTS), airflow_run_id="before")
    switched(app_db)
    moved = PRODUCTS.with_model(CANDIDATE)

    # A backfill of the same rows: the rows the old model made are at another prompt version, so the
    # interval collect takes them again without reprocess.
    workload = model_in_force(app_db, PRODUCTS)
    interval = run_night(app_db, backend, workload, airflow_run_id="backfill", mode="interval",
                         data_interval=_interval_of_everything(app_db))
    assert interval.summary.succeeded == 8
    assert app_db.execute("SELECT model, prompt_version FROM nightshift.runs WHERE run_pk = %s",
                          (interval.run.run_pk,)).fetchone() == (CANDIDATE, moved.prompt_version)
    rows = app_db.execute("SELECT DISTINCT model, prompt_version FROM app.product_enrichments").fetchall()
    assert rows == [(CANDIDATE, moved.prompt_version)]

    seed(app_db, products=4)
    summary = run_streaming(app_db, backend, workload, claimer="stream")
    assert summary.succeeded > 0
    used = app_db.execute("SELECT DISTINCT model FROM nightshift.stream_usage WHERE workload = %s",
                          (PRODUCTS.name,)).fetchall()
    assert used == [(CANDIDATE,)]


def test_the_backfill_estimate_counts_the_old_models_rows_after_a_switch(app_db, app_dsn, emulator, capsys):
    import json
    from datetime import datetime, timedelta, timezone

    from nightshift_dev import demo_data

    day = datetime(2026, 3, 1, 2, tzinfo=timezone.utc)  # the interval 2026-03-01 02:00 – 2026-03-02 02:00
    demo_data.generate(app_db, tickets=0, products=5, bad_every=0, enqueue=False, seed=3,
                       now=day + timedelta(days=1))
    run_night(app_db, emulator_backend(emulator), PRODUCTS, airflow_run_id="backfill-sonnet", mode="interval",
              data_interval=(day, day + timedelta(days=1)))

    def estimated_rows() -> list[int]:
        code, out, err = cli(capsys, "estimate", "--workload", PRODUCTS.name, "--from", day.isoformat(),
                             "--to", day.isoformat(), "--json", "--dsn", app_dsn)
        assert code == 0, err
        return [i["rows"] for i in json.loads(out)]

    assert estimated_rows() == [0]  # every row is at the file's prompt version
    switched(app_db)
    assert estimated_rows() == [5]  # the old model's rows are older output: the backfill takes them again


def _interval_of_everything(conn):
    return conn.execute("SELECT now() - interval '30 days', now() + interval '1 day'").fetchone()


@pytest.mark.airflow
def test_the_dags_run_on_the_switched_model(airflow_db, app_db, anthropic_conn):
    """Through Airflow: the batch DAG's collect starts its ledger run on the model in force and its later
    tasks keep to it; the streaming DAG's task sends the switched model."""
    from tests.dags.test_batch_dags import FAST, batch_dag, ledger_run, streaming_dag, task_states

    switched(app_db)
    moved = PRODUCTS.with_model(CANDIDATE)
    seed(app_db, products=6)
    dag_run = batch_dag(PRODUCTS).test(run_conf=FAST)
    assert str(dag_run.state) == "success", task_states(dag_run)
    run = ledger_run(app_db, dag_run)
    assert app_db.execute("SELECT model, prompt_version FROM nightshift.runs WHERE run_pk = %s",
                          (run.run_pk,)).fetchone() == (CANDIDATE, moved.prompt_version)
    assert app_db.execute("SELECT DISTINCT model FROM nightshift.items WHERE run_pk = %s",
                          (run.run_pk,)).fetchall() == [(CANDIDATE,)]
    rows = app_db.execute("SELECT DISTINCT model, prompt_version FROM app.product_enrichments").fetchall()
    assert rows == [(CANDIDATE, moved.prompt_version)]

    seed(app_db, products=3)
    assert str(streaming_dag(PRODUCTS).test().state) == "success"
    assert app_db.execute("SELECT DISTINCT model FROM nightshift.stream_usage WHERE workload = %s",
                          (PRODUCTS.name,)).fetchall() == [(CANDIDATE,)]
    counts = app_db.execute("SELECT count(*), count(DISTINCT model) FROM app.product_enrichments").fetchone()
    assert counts == (9, 1)


@pytest.mark.airflow
def test_a_switch_made_while_a_night_runs_waits_for_the_next_night(airflow_db, app_db, anthropic_conn):
    """The night keeps the model its collect started it on: a revert recorded between collect and submit
    changes neither the requests it sends nor the rows it lands."""
    from nightshift.operators import (CollectRequestsOperator, FinalizeRunOperator, LandResultsOperator,
                                      SubmitBatchesOperator)
    from tests.batch_night import wait_until_ended
    from tests.dags.test_batch_dags import FAST, batch_dag

    switched(app_db)
    seed(app_db, products=5)
    context = {"dag": batch_dag(PRODUCTS), "run_id": "manual__mid_night_switch", "params": FAST}
    CollectRequestsOperator(task_id="c", workload=PRODUCTS.name).execute(context)
    switch_model(app_db, PRODUCTS, PRODUCTS.model)  # back to Sonnet 5.5, while the night is on Haiku 5.5
    submitted = SubmitBatchesOperator(task_id="s", workload=PRODUCTS.name).execute(context)
    wait_until_ended(emulator_backend(anthropic_conn), submitted["batch_ids"], anthropic_conn)
    LandResultsOperator(task_id="l", workload=PRODUCTS.name).execute(context)
    FinalizeRunOperator(task_id="f", workload=PRODUCTS.name).execute(context)

    moved = PRODUCTS.with_model(CANDIDATE)
    # the rows name the model the requests were sent to (the reply's), the items the one land kept to
    landed = app_db.execute("SELECT DISTINCT i.model, d.model, d.prompt_version FROM nightshift.items i "
                            "JOIN app.product_enrichments d ON d.product_id::text = i.source_key").fetchall()
    assert landed == [(CANDIDATE, CANDIDATE, moved.prompt_version)]
    assert model_in_force(app_db, PRODUCTS) is PRODUCTS  # the next night runs on the file's model
