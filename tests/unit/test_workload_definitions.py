"""Workload definitions: the shipped ones load, and a bad one names the workload and field."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from nightshift import paths
from nightshift.deployment import load_workloads
from nightshift.workloads import WorkloadDefinitionError

SHIPPED = (paths.PROJECT_ROOT / "workloads")


@pytest.fixture
def workload_dir(tmp_path: Path) -> Path:
    target = tmp_path / "workloads"
    shutil.copytree(SHIPPED, target)
    return target


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_shipped_workloads_load():
    workloads = load_workloads()
    assert set(workloads) == {"ticket_classification", "product_enrichment"}
    for workload in workloads.values():
        assert workload.instructions.strip(), workload.name
        assert re.fullmatch(r"v-[0-9a-f]{12}", workload.prompt_version)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("model"), "field model: Field required"),
        (lambda d: d.update(max_tokens=0), "field max_tokens"),
        (lambda d: d["source"].update(table="tickets"), "field source.table"),
        (lambda d: d["output"]["schema"].update(type="array"), "field output.schema"),
        (lambda d: d["output"]["schema"]["properties"]["label"].update(type="strng"), "not a valid JSON Schema"),
        (lambda d: d["destination"]["columns"].update(priority="priority"), "destination.columns.priority"),
        (lambda d: d["prompt"].update(item_template="{subject} {sla}"), "['sla']"),
        (lambda d: d["prompt"].update(instructions_file="prompts/missing.md"), "prompt.instructions_file"),
        (lambda d: d["source"].update(required_columns=["priority"]), "required_columns ['priority']"),
        (lambda d: d.update(colour="blue"), "field colour: Extra inputs are not permitted"),
        (lambda d: d.update(backend="openai"), "field backend: unknown batch backend 'openai'; known backends: anthropic"),
    ],
)
def test_invalid_definition_names_workload_and_field(workload_dir, change, expected):
    edit(workload_dir / "ticket_classification.yaml", change)
    with pytest.raises(WorkloadDefinitionError) as raised:
        load_workloads(workload_dir)
    message = str(raised.value)
    assert "workload 'ticket_classification'" in message
    assert expected in message


def test_the_backend_defaults_to_anthropic_and_names_its_implementation(workload_dir):
    from nightshift.backends import implementation
    from nightshift.backends.anthropic import AnthropicBackend, AsyncAnthropicBackend

    workload = load_workloads(workload_dir)["ticket_classification"]
    assert workload.backend == "anthropic"
    assert implementation(workload.backend) is AnthropicBackend
    assert implementation(workload.backend, asynchronous=True) is AsyncAnthropicBackend
    edit(workload_dir / "ticket_classification.yaml", lambda d: d.update(backend="anthropic"))
    assert load_workloads(workload_dir)["ticket_classification"].prompt_version == workload.prompt_version


def test_unreadable_yaml_is_reported_by_file(workload_dir):
    (workload_dir / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(WorkloadDefinitionError, match=r"workload 'broken' .*cannot read YAML"):
        load_workloads(workload_dir)


def test_a_file_declaring_another_files_name_is_refused_naming_both(workload_dir):
    shutil.copy(workload_dir / "ticket_classification.yaml", workload_dir / "copy.yaml")
    with pytest.raises(WorkloadDefinitionError) as raised:
        load_workloads(workload_dir)
    assert str(raised.value) == (f"workload file copy.yaml declares name 'ticket_classification': a workload's file "
                                 f"must be named ticket_classification.yaml ({workload_dir / 'copy.yaml'})")


def test_in_a_deployment_a_copy_is_set_aside_by_its_file_name_and_the_original_loads(workload_dir):
    edit(workload_dir / "ticket_classification.yaml", lambda d: d.update(max_tokens=0))
    (workload_dir / "ticket_classification.yaml").rename(workload_dir / "ticket_copy.yaml")
    shutil.copy(SHIPPED / "ticket_classification.yaml", workload_dir / "ticket_classification.yaml")
    errors: dict[str, WorkloadDefinitionError] = {}
    loaded = load_workloads(workload_dir, errors=errors)
    assert set(loaded) == {"ticket_classification", "product_enrichment"}
    assert list(errors) == ["ticket_copy"] and "must be named ticket_classification.yaml" in str(errors["ticket_copy"])


def test_a_name_in_two_folders_stays_with_the_earlier_folder(workload_dir, tmp_path):
    later = tmp_path / "later"
    later.mkdir()
    shutil.copy(workload_dir / "product_enrichment.yaml", later)
    with pytest.raises(WorkloadDefinitionError, match="already defines: one name, one file"):
        load_workloads((workload_dir, later))
    errors: dict[str, WorkloadDefinitionError] = {}
    assert set(load_workloads((workload_dir, later), errors=errors)) == {"ticket_classification", "product_enrichment"}
    message = str(errors.pop("product_enrichment__folder2"))
    assert not errors
    assert str(later / "product_enrichment.yaml") in message and str(workload_dir / "product_enrichment.yaml") in message


@pytest.mark.parametrize(("schedule", "timezone"), [("@daily", "UTC"), ("*/30 1-5 * * 1-5", "Europe/Paris"),
                                                     (None, "deployment"), ("deployment", "Asia/Tokyo")])
def test_a_workload_may_set_its_own_schedule_and_time_zone(workload_dir, schedule, timezone):
    edit(workload_dir / "ticket_classification.yaml", lambda d: d.update(schedule=schedule, timezone=timezone))
    workload = load_workloads(workload_dir)["ticket_classification"]
    assert (workload.schedule, workload.timezone) == (schedule, timezone)
    assert load_workloads(SHIPPED)["ticket_classification"].prompt_version == workload.prompt_version


@pytest.mark.parametrize(("change", "expected"), [
    ({"schedule": "0 25 * * *"}, "field schedule: '0 25 * * *' is not a five-field cron expression"),
    ({"schedule": "0 0 2 * * *"}, "field schedule: '0 0 2 * * *' is not a five-field cron expression"),
    ({"schedule": "@nightly"}, "field schedule: unknown preset '@nightly'; known: @hourly, @daily"),
    ({"timezone": "Mars/Olympus"}, "field timezone: unknown time zone 'Mars/Olympus'"),
])
def test_a_bad_schedule_or_time_zone_names_the_field(workload_dir, change, expected):
    edit(workload_dir / "ticket_classification.yaml", lambda d: d.update(change))
    with pytest.raises(WorkloadDefinitionError, match="workload 'ticket_classification'") as raised:
        load_workloads(workload_dir)
    assert expected in str(raised.value)


def test_prompt_version_changes_with_anything_that_changes_output(workload_dir):
    before = load_workloads(workload_dir)["ticket_classification"].prompt_version
    edit(workload_dir / "ticket_classification.yaml", lambda d: d.update(max_tokens=601))
    after = load_workloads(workload_dir)["ticket_classification"].prompt_version
    assert before != after


def test_label_set_matches_destination_check_constraint():
    """The DB refuses an unapproved label even if a reply slipped past validation."""
    schema_sql = (paths.include_dir() / "sql" / "001_app_schema.sql").read_text()
    constraint = re.search(r"CHECK \(label IN \(([^)]*)\)\)", schema_sql).group(1)
    allowed = {v.strip().strip("'") for v in constraint.split(",")}
    workload = load_workloads()["ticket_classification"]
    assert allowed == set(workload.output.json_schema["properties"]["label"]["enum"])


def test_with_model_is_the_same_workload_on_another_model_checked_for_it():
    workloads = load_workloads()
    enrichment = workloads["product_enrichment"]
    on_haiku = enrichment.with_model("claude-haiku-5-5")
    assert (on_haiku.model, on_haiku.instructions, on_haiku.output) == ("claude-haiku-5-5", enrichment.instructions,
                                                                       enrichment.output)
    assert on_haiku.prompt_version != enrichment.prompt_version  # rows say which model made them
    assert enrichment.with_model(enrichment.model) is enrichment
    with pytest.raises(ValueError, match=r"cannot run on claude-haiku-4-5: effort low: claude-haiku-4-5 has no effort"):
        workloads["ticket_classification"].with_model("claude-haiku-4-5")
