"""One [nightshift] section of Airflow's configuration; the NIGHTSHIFT_* variables for a release."""

from __future__ import annotations

import warnings

import pytest

from nightshift import config
from nightshift.deployment import load_workloads
from nightshift.workloads.registry import WorkloadsFolderError


@pytest.fixture
def clean(monkeypatch):
    for option in config.OPTIONS:
        monkeypatch.delenv(f"AIRFLOW__NIGHTSHIFT__{option.key.upper()}", raising=False)
        for legacy in option.legacy:
            monkeypatch.delenv(legacy, raising=False)
    return monkeypatch


def test_the_section_is_read_as_airflow_reads_its_own(clean):
    clean.setenv("AIRFLOW__NIGHTSHIFT__SCHEDULE", "30 3 * * *")
    clean.setenv("AIRFLOW__NIGHTSHIFT__BATCH_API_RPM", "120")
    cfg = config.settings()
    assert (cfg.schedule, cfg.batch_api_rpm, cfg.timezone) == ("30 3 * * *", 120, "UTC")


def test_a_legacy_variable_still_works_and_says_it_is_deprecated(clean):
    clean.setenv("NIGHTSHIFT_POLL_BUDGET_RPM", "12")
    with pytest.warns(DeprecationWarning, match=r"NIGHTSHIFT_POLL_BUDGET_RPM is deprecated.*\[nightshift\] poll_budget_rpm"):
        assert config.settings().poll_budget_rpm == 12.0


def test_the_new_name_wins_over_the_legacy_one_without_a_warning(clean):
    clean.setenv("NIGHTSHIFT_TIMEZONE", "Europe/Paris")
    clean.setenv("AIRFLOW__NIGHTSHIFT__TIMEZONE", "America/New_York")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config.settings().timezone == "America/New_York"


def test_a_value_of_the_wrong_type_names_the_option(clean):
    clean.setenv("AIRFLOW__NIGHTSHIFT__MAX_QUEUED_REQUESTS", "lots")
    with pytest.raises(config.SettingsError, match=r"\[nightshift\] max_queued_requests = 'lots' is not an integer"):
        config.settings()


def test_the_provider_info_documents_every_option():
    from nightshift.provider import get_provider_info

    options = get_provider_info()["config"]["nightshift"]["options"]
    assert set(options) == {o.key for o in config.OPTIONS}
    assert options["schedule"]["default"] == "0 2 * * *" and options["workloads_folder"]["default"] is None


def test_workloads_default_to_a_folder_beside_the_dags_folder(clean, tmp_path):
    clean.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    assert config.settings().workloads_folders == (tmp_path / "workloads",)
    with pytest.raises(WorkloadsFolderError, match=rf"workloads folder {tmp_path / 'workloads'} does not exist "
                                                   r"\(the default .*set \[nightshift\] workloads_folder\)"):
        load_workloads()


def test_a_configured_folder_that_is_missing_or_empty_is_an_error(clean, tmp_path):
    clean.setenv("AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER", str(tmp_path / "nowhere"))
    with pytest.raises(WorkloadsFolderError, match=r"nowhere does not exist \(\[nightshift\] workloads_folder\)"):
        load_workloads()
    (tmp_path / "empty").mkdir()
    clean.setenv("AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER", str(tmp_path / "empty"))
    with pytest.raises(WorkloadsFolderError, match=r"empty holds no workload definition"):
        load_workloads()


def test_several_folders_load_together_and_prompts_resolve_beside_their_yaml(clean, tmp_path):
    import shutil

    from nightshift.paths import PROJECT_ROOT

    shipped = PROJECT_ROOT / "workloads"
    for name in ("ticket_classification", "product_enrichment"):
        team = tmp_path / f"team_{name}"
        (team / "prompts").mkdir(parents=True)
        shutil.copy(shipped / f"{name}.yaml", team)
        shutil.copy(shipped / "prompts" / f"{name}.md", team / "prompts")
    clean.setenv("AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER",
                 f"{tmp_path / 'team_ticket_classification'}, {tmp_path / 'team_product_enrichment'}")
    workloads = load_workloads()
    assert set(workloads) == {"ticket_classification", "product_enrichment"}
    assert workloads["ticket_classification"].instructions == \
        (shipped / "prompts" / "ticket_classification.md").read_text()
