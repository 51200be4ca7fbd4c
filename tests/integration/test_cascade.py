"""Cascades (#17): Haiku 5.5 first, Sonnet 5.5 for what it labels ``other`` or answers invalidly; every
request lands once, each row naming the model that answered, and the night's cost by model with what
Sonnet 5.5 alone would have cost. Real PostgreSQL, the emulator over HTTP, the pipeline's own steps."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from nightshift.batch import land
from nightshift.costs import Usage, price_table
from nightshift.deployment import get_workload
from nightshift.workloads.definition import Workload, WorkloadDefinitionError, load_workload_file
from tests.batch_night import run_night, wait_until_ended
from tests.chaos.invariants import assert_every_billed_request_has_a_cost, assert_nothing_lost_or_doubled
from tests.helpers import assert_every_request_terminal, emulator_backend, queue_states, seed

HAIKU, SONNET = "claude-haiku-5-5", "claude-sonnet-5-5"
TICKETS = get_workload("ticket_classification")


def cascade_workload(**escalate_on) -> Workload:
    """The ticket classifier as a cascade: Haiku 5.5, then Sonnet 5.5."""
    raw = TICKETS.model_dump(by_alias=True, exclude_defaults=True)
    raw.pop("model")
    raw["cascade"] = {"models": [HAIKU, SONNET],
                      "escalate_on": escalate_on or {"invalid_output": True, "values": {"label": ["other"]}}}
    return Workload.model_validate(raw)


CASCADE = cascade_workload()
#: custom_ids of requests 3, 8 and 13 (the run's first): Haiku breaks its reply to them, once each
BROKEN = r"r1-q(3|8|13)"
#: request 5: overloaded once, an ordinary retry that stays on Haiku
OVERLOADED = r"r1-q5"


#: requests whose tickets are about something else: both models label them ``other`` (the emulator
#: answers an enum with the member named earliest in the prompt)
ABOUT_OTHER = (2, 9, 20)


def night_with_faults(app_db, emulator, tickets: int = 40):
    seed(app_db, tickets=tickets)
    app_db.execute("UPDATE app.support_tickets SET subject = 'Other matter: ' || subject "
                   "WHERE ticket_id::text IN "
                   "(SELECT source_key FROM app.llm_requests WHERE request_id = ANY(%s))",
                   (list(ABOUT_OTHER),))
    app_db.commit()
    emulator.add_fault(kind="perturb", mode="not_json", custom_id=BROKEN, count=3)
    emulator.add_fault(kind="item_error", error_type="overloaded_error", custom_id=OVERLOADED, count=1)


def attempts(app_db, run_pk: int) -> list[tuple]:
    return app_db.execute(
        "SELECT i.source_key, a.round, a.model, a.status, a.error_type, a.error_message, a.input_tokens, "
        "a.output_tokens, a.cache_write_5m_tokens, a.cache_write_1h_tokens, a.cache_read_input_tokens, "
        "a.cost_usd "
        "FROM nightshift.attempts a JOIN nightshift.items i USING (run_pk, custom_id) WHERE a.run_pk = %s "
        "ORDER BY a.custom_id, a.round", (run_pk,)).fetchall()


def test_a_cascade_night_lands_every_request_once_naming_its_model_and_its_saving(app_db, emulator):
    night_with_faults(app_db, emulator)
    night = run_night(app_db, emulator_backend(emulator), CASCADE)
    run_pk = night.run.run_pk
    summary = night.summary

    assert summary.requests == 40 and summary.succeeded == 40 and summary.failed == {}
    assert_every_request_terminal(app_db, run_pk, CASCADE.destination.table, CASCADE.destination.key)
    assert queue_states(app_db, CASCADE.name) == {"done": 40}
    assert [f["fired"] for f in emulator.faults()] == [3, 1]

    tried = attempts(app_db, run_pk)
    escalated = {key: message for key, _, _, _, error_type, message, *_ in tried
                 if error_type == "escalated"}
    by_invalid = {k for k, m in escalated.items() if m.startswith(f"invalid_output from {HAIKU}: ")}
    by_other = {k for k, m in escalated.items() if m == f"label other from {HAIKU}"}
    assert len(by_invalid) == 3 and len(by_other) >= len(ABOUT_OTHER), escalated
    assert by_invalid | by_other == set(escalated)
    # the overloaded request was retried on Haiku beside the escalations, in the same round
    retried = [(r, m, e) for k, r, m, _, e, *_ in tried if k == app_db.execute(
        "SELECT source_key FROM app.llm_requests WHERE request_id = 5").fetchone()[0]]
    assert retried[0] == (0, HAIKU, "overloaded_error") and retried[1][:2] == (1, HAIKU)
    assert {r for _, r, m, *_ in tried if m == SONNET} == {1}
    round_1 = app_db.execute("SELECT count(*) FROM nightshift.batches WHERE run_pk = %s AND round = 1",
                             (run_pk,)).fetchone()[0]
    assert round_1 == 1, "the escalations and the ordinary retry go in one batch of mixed models"

    rows = dict(((key, (label, model, version)) for key, label, model, version in app_db.execute(
        "SELECT ticket_id::text, label, model, prompt_version FROM app.ticket_classifications")))
    assert len(rows) == 40
    versions = {model: CASCADE.on_model(model).prompt_version for model in (HAIKU, SONNET)}
    assert versions[HAIKU] == CASCADE.prompt_version != versions[SONNET]
    for key, (label, model, version) in rows.items():
        assert model == (SONNET if key in escalated else HAIKU), key
        assert version == versions[model]
        assert label != "other" or model == SONNET  # Haiku's 'other' never lands
    items = dict(app_db.execute("SELECT source_key, model FROM nightshift.items WHERE run_pk = %s",
                                (run_pk,)))
    assert items == {key: model for key, (_, model, _) in rows.items()}
    delivered = dict(app_db.execute("SELECT source_key, model FROM nightshift.deliveries"))
    assert delivered == items

    # cost by model is the attempts' own record; Sonnet alone re-prices the others at its batch rates
    prices = price_table()
    spent = {HAIKU: Decimal(0), SONNET: Decimal(0)}
    alone = Decimal(0)
    for key, _, model, _, _, _, *tokens, cost in tried:
        spent[model] += cost or 0
        if model == SONNET:
            alone += cost
        elif key not in escalated and tokens[0] is not None:
            alone += prices.cost(Usage(*tokens), SONNET, batch=True, on=night.run.billed_on)
    by_model = summary.cost_by_model
    assert by_model[HAIKU]["items_answered"] == 40 - len(escalated)
    assert by_model[SONNET]["items_answered"] == len(escalated)
    assert by_model[HAIKU]["attempts"] == 40 and by_model[SONNET]["attempts"] == len(escalated)
    for model in (HAIKU, SONNET):
        assert by_model[model]["cost_usd"] == pytest.approx(float(spent[model]), abs=1e-9)
    warmup = app_db.execute("SELECT warmup_cost_usd FROM nightshift.runs WHERE run_pk = %s",
                            (run_pk,)).fetchone()[0]
    assert summary.costs["cost_usd"] == spent[HAIKU] + spent[SONNET] + warmup
    assert summary.last_model_alone_usd >= float(alone)  # plus the warm-up at Sonnet's rate, if any
    assert summary.last_model_alone_usd > float(summary.costs["cost_usd"]), "no saving against Sonnet alone"


def test_a_cascade_night_where_haiku_differs_by_the_emulators_model_profile(app_db, emulator):
    """Haiku 5.5 agrees with the strongest answer on 70% of labels and breaks 10% of its replies
    (Sonnet 5.5 has no profile: it answers canonically): what Haiku labels ``other`` or breaks lands
    from Sonnet, anything else from Haiku, each request once."""
    emulator.configure(model_profiles={HAIKU: {"agreement": {"label": 0.7}, "malformed_rate": 0.1}})
    seed(app_db, tickets=60)
    night = run_night(app_db, emulator_backend(emulator), CASCADE)
    run_pk = night.run.run_pk
    assert night.summary.succeeded == 60 and night.summary.failed == {}
    assert_every_request_terminal(app_db, run_pk, CASCADE.destination.table, CASCADE.destination.key)
    tried = attempts(app_db, run_pk)
    escalated = {key: message for key, _, _, _, error_type, message, *_ in tried if error_type == "escalated"}
    assert any(m.startswith("invalid_output from") for m in escalated.values())
    assert any(m == f"label other from {HAIKU}" for m in escalated.values())
    rows = dict((key, model) for key, model in app_db.execute(
        "SELECT ticket_id::text, model FROM app.ticket_classifications"))
    assert len(rows) == 60
    assert {k for k, m in rows.items() if m == SONNET} == set(escalated)
    by_model = night.summary.cost_by_model
    assert by_model[SONNET]["items_answered"] == by_model[SONNET]["attempts"] == len(escalated)
    assert night.summary.last_model_alone_usd > float(night.summary.costs["cost_usd"])


def test_a_cascade_escalates_a_confidence_below_its_threshold(app_db, emulator):
    raw = CASCADE.model_dump(by_alias=True, exclude_defaults=True)
    schema = raw["output"]["schema"]
    schema["properties"]["confidence"] = {"type": "number", "minimum": 0, "maximum": 1}
    schema["required"] = [*schema["required"], "confidence"]
    raw["cascade"]["escalate_on"] = {"below": {"confidence": 0.5}}
    workload = Workload.model_validate(raw)
    seed(app_db, tickets=30)
    night = run_night(app_db, emulator_backend(emulator), workload)
    assert night.summary.succeeded == 30
    tried = attempts(app_db, night.run.run_pk)
    escalated = {key: message for key, _, _, _, error_type, message, *_ in tried if error_type == "escalated"}
    assert escalated and len(escalated) < 30
    for message in escalated.values():
        stated = message.removeprefix("confidence ").removesuffix(f" from {HAIKU}")
        confidence, threshold = stated.split(" below ")
        assert float(confidence) < float(threshold) == 0.5
    rows = dict(app_db.execute("SELECT ticket_id::text, model FROM app.ticket_classifications"))
    assert {k for k, m in rows.items() if m == SONNET} == set(escalated)


def test_the_free_check_before_the_first_batch_covers_every_cascade_model(app_db, emulator):
    """Haiku 5.5 takes ``thinking: disabled``, Sonnet 5.5 refuses it (it turns thinking off with
    ``between_tools``): the run fails before any batch, rather than paying a round on Haiku first."""
    from nightshift.batch.preflight import PreflightRefused

    raw = CASCADE.model_dump(by_alias=True, exclude_defaults=True)
    raw["request_overrides"] = {"thinking": {"type": "disabled"}}
    seed(app_db, tickets=5)
    with pytest.raises(PreflightRefused) as refused:
        run_night(app_db, emulator_backend(emulator), Workload.model_validate(raw))
    assert refused.value.field == "thinking" and "thinking.type.disabled" in refused.value.message
    assert emulator.stats()["batches_created"] == 0
    assert queue_states(app_db, CASCADE.name) == {"failed": 5}


def test_the_streaming_path_runs_the_same_cascade_within_each_request(app_db, emulator):
    """Streaming tries the models in turn within one request's handling: its rows equal the batch
    night's, model and prompt version included, and its usage counts every model's reply."""
    from nightshift.streaming import run_streaming
    from tests.helpers import destination_rows

    night_with_faults(app_db, emulator, tickets=25)
    emulator.clear_faults()
    backend = emulator_backend(emulator)
    summary = run_streaming(app_db, backend, CASCADE, claimer="stream")
    assert summary.succeeded == 25
    streamed = destination_rows(app_db, CASCADE.destination.table, CASCADE.destination.key)
    about_other = {key for (key,) in app_db.execute(
        "SELECT source_key FROM app.llm_requests WHERE request_id = ANY(%s)", (list(ABOUT_OTHER),))}
    models = dict(app_db.execute("SELECT ticket_id::text, model FROM app.ticket_classifications"))
    assert {k for k, m in models.items() if m == SONNET} == about_other
    assert dict(app_db.execute("SELECT count(*) > 0, bool_and(cost_usd > 0) FROM nightshift.stream_usage "
                               "WHERE model = %s", (SONNET,)).fetchall()) == {True: True}

    app_db.execute("TRUNCATE app.ticket_classifications")
    app_db.execute("UPDATE app.llm_requests SET status = 'pending', error = NULL, claimed_by = NULL")
    app_db.commit()
    run_night(app_db, backend, CASCADE)
    assert destination_rows(app_db, CASCADE.destination.table, CASCADE.destination.key) == streamed


def test_the_cost_report_shows_cost_by_model_and_the_saving(app_db, emulator):
    from rich.console import Console

    from nightshift.report import NightReport, _fill_from_ledger, print_cost_by_model

    night_with_faults(app_db, emulator, tickets=20)
    night = run_night(app_db, emulator_backend(emulator), CASCADE)
    report = NightReport(CASCADE.name, CASCADE.destination.table, run_pk=night.run.run_pk)
    _fill_from_ledger(app_db, report)
    console = Console(width=200, record=True)
    print_cost_by_model(console, [report])
    text = console.export_text()
    haiku, sonnet = report.cost_by_model[HAIKU], report.cost_by_model[SONNET]
    assert f"{HAIKU}" in text and f"{SONNET}" in text
    assert f"${haiku['cost_usd']:.4f}" in text and f"${sonnet['cost_usd']:.4f}" in text
    alone, actual = night.summary.last_model_alone_usd, float(night.summary.costs["cost_usd"])
    assert f"on {SONNET} alone (a re-pricing): ${alone:.4f}" in text
    assert f"saved ${alone - actual:.4f}" in text


def test_an_escalated_attempt_keeps_its_cost_when_a_later_landing_is_killed(app_db, emulator, monkeypatch):
    """Chaos: round 1's landing dies half-way (the results stream cut); its retry lands the rest:
    nothing written twice, nothing lost, every billed attempt costed on its own record."""
    night_with_faults(app_db, emulator, tickets=30)
    backend = emulator_backend(emulator)
    monkeypatch.setattr(land, "SLICE", 2)
    from nightshift.batch.collect import collect
    from nightshift.batch.finalize import finalize_run
    from nightshift.batch.ledger import ensure_run
    from nightshift.batch.submit import Caps, submit_round

    run = ensure_run(app_db, CASCADE, dag_id="test_cascade", airflow_run_id="chaos")
    collect(app_db, CASCADE, run)
    caps = Caps.for_workload(CASCADE)
    for round_ in (0, 1):
        result = submit_round(app_db, backend, CASCADE, run, round_, caps)
        wait_until_ended(backend, result.batch_ids, emulator)
        emulator.add_fault(kind="cut", endpoint="results", after_lines=3, count=1)
        with pytest.raises(Exception):
            land.land_round(app_db, backend, CASCADE, run, round_)
        app_db.rollback()
        assert emulator.faults()[-1]["fired"] == 1
        half = dict(app_db.execute("SELECT status = 'submitted', count(*) FROM nightshift.items "
                                   "WHERE run_pk = %s "
                                   "AND round = %s GROUP BY 1", (run.run_pk, round_)).fetchall())
        assert half.get(True) and half.get(False), f"round {round_}'s landing did not stop half-way: {half}"
        land.land_round(app_db, backend, CASCADE, run, round_)  # the task's retry
    summary = finalize_run(app_db, run)
    assert summary.succeeded == 30 and summary.failed == {}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)
    assert_every_billed_request_has_a_cost(app_db, emulator, run.run_pk)
    assert sum(1 for *_, error_type, _, _, _, _, _, _, _ in attempts(app_db, run.run_pk)
               if error_type == "escalated") >= 3


def test_validation_retries_keep_the_first_attempts_cost(app_db, emulator):
    """A reply asked for again (validation_retries) was billed too: the night's cost counts both attempts."""
    raw = TICKETS.model_dump(by_alias=True, exclude_defaults=True)
    raw["batch"] = {**raw.get("batch", {}), "validation_retries": 1}
    workload = Workload.model_validate(raw)
    seed(app_db, tickets=10)
    emulator.add_fault(kind="perturb", mode="schema_violation", custom_id=r"r1-q(3|8)", count=2)
    night = run_night(app_db, emulator_backend(emulator), workload)
    assert night.summary.succeeded == 10 and night.summary.rounds == 2
    billed = Decimal(0)
    client = emulator_backend(emulator)
    prices = price_table()
    from nightshift.batch.costing import usage_of

    for (batch_id,) in app_db.execute("SELECT backend_batch_id FROM nightshift.batches WHERE run_pk = %s",
                                      (night.run.run_pk,)).fetchall():
        with client.results(batch_id) as outcomes:
            for outcome in outcomes:
                if outcome.message:
                    usage = usage_of(outcome.message["usage"], workload)
                    billed += prices.cost(usage, outcome.message["model"], batch=True, on=night.run.billed_on)
    warmup = app_db.execute("SELECT warmup_cost_usd FROM nightshift.runs WHERE run_pk = %s",
                            (night.run.run_pk,)).fetchone()[0]
    assert night.summary.costs["cost_usd"] == billed + warmup
    by_model = night.summary.cost_by_model  # a single model's night has its one line, and no re-pricing
    assert by_model.keys() == {TICKETS.model} and night.summary.last_model_alone_usd is None
    assert by_model[TICKETS.model]["attempts"] == 12 and by_model[TICKETS.model]["items_answered"] == 10
    assert by_model[TICKETS.model]["cost_usd"] == pytest.approx(float(billed), abs=1e-9)


# -- definition errors: each rule, named by its field --

def write_workload(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load(Path("workloads/ticket_classification.yaml").read_text())
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "ticket_classification.md").write_text(TICKETS.instructions)
    raw.pop("model")
    raw["cascade"] = {"models": [HAIKU, SONNET], "escalate_on": {"values": {"label": ["other"]}}}
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path = tmp_path / "ticket_classification.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cascade(*models, **escalate_on):
    return {"models": list(models) or [HAIKU, SONNET],
            "escalate_on": escalate_on or {"values": {"label": ["other"]}}}


def test_a_cascade_loads_and_takes_its_first_model(tmp_path):
    workload = load_workload_file(write_workload(tmp_path))
    assert workload.model == HAIKU and workload.models == [HAIKU, SONNET]
    assert workload.with_model(SONNET).cascade is None


@pytest.mark.parametrize(("changes", "expected"), [
    ({"model": SONNET},
     "field (top level): model claude-sonnet-5-5 is not cascade.models[0] (claude-haiku-5-5)"),
    ({"cascade": cascade(HAIKU)},
     "field cascade.models: List should have at least 2 items"),
    ({"cascade": cascade(HAIKU, HAIKU)},
     "cascade.models names claude-haiku-5-5 more than once"),
    ({"cascade": cascade(HAIKU, "claude-nonesuch-1")},
     "cascade.models[1]: workload 'ticket_classification' cannot run on claude-nonesuch-1"),
    ({"cascade": cascade(HAIKU, "claude-haiku-4-5")},
     "cascade.models[1]: workload 'ticket_classification' cannot run on claude-haiku-4-5: "
     "effort low: claude-haiku-4-5 has no effort setting"),
    ({"cascade": {"models": [HAIKU, SONNET], "escalate_on": {}}},
     "cascade.escalate_on names no rule"),
    ({"cascade": cascade(values={"label": ["urgent"]})},
     "cascade.escalate_on.values.label: ['urgent'] are not in the field's enum"),
    ({"cascade": cascade(values={"rationale": ["x"]})},
     "cascade.escalate_on.values.rationale: field 'rationale' is not an enum"),
    ({"cascade": cascade(values={"priority": ["high"]})},
     "cascade.escalate_on.values.priority: the output schema has no field 'priority'"),
    ({"cascade": cascade(below={"label": 0.6})},
     "cascade.escalate_on.below.label: field 'label' is not a number"),
    ({"cascade": cascade(below={"confidence": 0.6})},
     "cascade.escalate_on.below.confidence: the output schema has no field 'confidence'"),
    ({"batch": {"retry_rounds": 0}},
     "batch.retry_rounds 0 is fewer than the 1 escalation(s) cascade.models needs"),
])
def test_a_cascade_that_cannot_work_is_refused_at_load_naming_the_field(tmp_path, changes, expected):
    with pytest.raises(WorkloadDefinitionError) as refused:
        load_workload_file(write_workload(tmp_path, **changes))
    assert expected in str(refused.value)


def test_a_text_output_escalates_only_on_invalid_output(tmp_path):
    text = {"type": "text", "max_chars": 400}
    columns = {"table": "app.ticket_classifications", "key": "ticket_id", "columns": {"rationale": "text"},
               "written_at_column": "classified_at",
               "asset": {"name": "app.ticket_classifications", "uri": "postgres://x/y"}}
    with pytest.raises(WorkloadDefinitionError) as refused:
        load_workload_file(write_workload(tmp_path, output=text, destination=columns,
                                          cascade=cascade(values={"label": ["other"]})))
    assert "cascade.escalate_on: a text output escalates only on invalid_output" in str(refused.value)
    assert load_workload_file(write_workload(tmp_path, output=text, destination=columns,
                                             cascade=cascade(invalid_output=True))).cascade is not None


def test_a_streaming_cascade_handed_back_after_its_first_model_answered_keeps_what_that_answer_cost(
        app_db, emulator):
    """Haiku answers ``other``; the call to Sonnet fails transiently and the request goes back to the
    queue. Haiku's reply was paid for: it is recorded then, and the next night's handling adds to it."""
    from nightshift.queue import fetch_source_rows
    from nightshift.streaming import run_streaming
    from nightshift.workloads.requests import build_params

    seed(app_db, tickets=2)
    app_db.execute("UPDATE app.support_tickets SET subject = 'Other matter: ' || subject")
    app_db.commit()
    request_id, key = app_db.execute("SELECT request_id, source_key FROM app.llm_requests "
                                     "ORDER BY request_id LIMIT 1").fetchone()
    backend = emulator_backend(emulator, max_retries=0)

    def tokens_of(model: str) -> tuple[int, int]:
        """``(prompt tokens, output tokens)`` of one reply of ``model`` to the request (the same params get
        the same reply; how the prompt splits into cache reads and writes depends on the cache)."""
        on = CASCADE.on_model(model)
        usage = backend.create_message(build_params(on, fetch_source_rows(app_db, CASCADE, [key])[key]))["usage"]
        prompt = sum(usage.get(k) or 0 for k in ("input_tokens", "cache_creation_input_tokens",
                                                 "cache_read_input_tokens"))
        return prompt, usage["output_tokens"]

    def recorded() -> tuple:
        return app_db.execute(
            "SELECT model, input_tokens + cache_write_tokens + cache_read_tokens, output_tokens, cost_usd "
            "FROM nightshift.stream_usage WHERE request_id = %s", (request_id,)).fetchone()

    emulator.add_fault(kind="status", endpoint="messages", status=529, rate=0.5, count=1)  # the 2nd call: Sonnet's
    first = run_streaming(app_db, backend, CASCADE, claimer="stream", limit=1)
    assert (first.deferred, queue_states(app_db, CASCADE.name)) == (1, {"pending": 2})
    assert emulator.faults()[-1]["fired"] == 1
    assert recorded() is not None, "Haiku's paid reply was not recorded"
    model, prompt, output, first_cost = recorded()
    haiku, sonnet = tokens_of(HAIKU), tokens_of(SONNET)
    assert (model, prompt, output) == (HAIKU, *haiku) and first_cost > 0

    second = run_streaming(app_db, backend, CASCADE, claimer="stream", limit=1)
    assert second.succeeded == 1
    model, prompt, output, cost = recorded()  # both handlings, each reply once
    assert (model, prompt, output) == (SONNET, 2 * haiku[0] + sonnet[0], 2 * haiku[1] + sonnet[1])
    assert cost > first_cost


def test_a_cascade_is_not_trialled_as_if_one_model_had_written_its_rows(app_db, emulator):
    from nightshift.migration import trial

    night_with_faults(app_db, emulator, tickets=20)
    run_night(app_db, emulator_backend(emulator), CASCADE)
    with pytest.raises(trial.TrialError, match=r"^ticket_classification is a cascade \(claude-haiku-5-5 → "
                                               r"claude-sonnet-5-5\): its rows were written by more than one"):
        trial.start(app_db, CASCADE, trial.TrialRequest(SONNET, sample=10), dag_id="trial", airflow_run_id="r")
    assert app_db.execute("SELECT count(*) FROM nightshift.model_trials").fetchone()[0] == 0
