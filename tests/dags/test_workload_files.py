"""Workload files as the DAG files see them: a file is named for its workload, and a workload runs on its
own schedule. The DAGs are those ``dags/*.py`` produce from a workloads folder of the test's own."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import pytest
import yaml

from nightshift.paths import PROJECT_ROOT
from nightshift.workloads.registry import load_deployment

SHIPPED = PROJECT_ROOT / "workloads"
PIPELINE = {"collect", "submit", "wait", "land", "finalize", "verdict"}


@pytest.fixture
def dags_of(monkeypatch):
    """The DAGs, by id, that the DAG files make of the given workloads folders."""
    monkeypatch.delenv("AIRFLOW__NIGHTSHIFT__SCHEDULE", raising=False)
    monkeypatch.delenv("AIRFLOW__NIGHTSHIFT__TIMEZONE", raising=False)

    def parse(*folders: Path) -> dict:
        monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER", ",".join(map(str, folders)))
        load_deployment.cache_clear()
        dags = {}
        for name in ("nightshift_batch.py", "nightshift_streaming.py", "nightshift_backfill.py"):
            namespace = runpy.run_path(str(PROJECT_ROOT / "dags" / name))
            dags.update({v.dag_id: v for v in namespace.values() if type(v).__name__ == "DAG"})
        return dags

    yield parse
    load_deployment.cache_clear()


def folder(tmp_path: Path, name: str, *, only: tuple[str, ...] = ()) -> Path:
    target = tmp_path / name
    shutil.copytree(SHIPPED, target)
    for path in target.glob("*.yaml"):
        if only and path.stem not in only:
            path.unlink()
    return target


def edit(path: Path, change, *, to: Path | None = None) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    (to or path).write_text(yaml.safe_dump(data))


def tasks(dag) -> set[str]:
    return {task.task_id.rsplit(".", 1)[-1] for task in dag.tasks}


def test_a_copy_with_the_live_workloads_name_fails_alone_and_the_live_dag_stays(tmp_path, dags_of):
    workloads = folder(tmp_path, "workloads")
    live = workloads / "ticket_classification.yaml"
    edit(live, lambda d: d.update(model="claude-imaginary-9"), to=workloads / "ticket_classification_copy.yaml")

    dags = dags_of(workloads)

    assert tasks(dags["nightshift_batch_ticket_classification"]) >= PIPELINE
    assert {"nightshift_stream_ticket_classification", "nightshift_backfill_ticket_classification"} <= set(dags)
    broken = dags["nightshift_batch_ticket_classification_copy"]
    assert tasks(broken) == {"definition_error"}
    assert ("workload file ticket_classification_copy.yaml declares name 'ticket_classification': a workload's "
            "file must be named ticket_classification.yaml") in broken.description


def test_a_name_claimed_again_by_a_later_folder_keeps_the_live_file_and_sets_the_new_one_aside(tmp_path, dags_of):
    live, later = folder(tmp_path, "live"), folder(tmp_path, "later", only=("ticket_classification",))
    edit(later / "ticket_classification.yaml", lambda d: d.update(description="the later copy", max_tokens=0))

    dags = dags_of(live, later)

    kept = dags["nightshift_batch_ticket_classification"]
    assert tasks(kept) >= PIPELINE and "the later copy" not in kept.description
    broken = dags["nightshift_batch_ticket_classification__folder2"]
    assert tasks(broken) == {"definition_error"}
    assert str(later / "ticket_classification.yaml") in broken.description
    assert str(live / "ticket_classification.yaml") in broken.description


def timetable(dag) -> tuple[str, str] | None:
    """(cron, time zone) of a DAG's schedule; None for manual runs only."""
    if type(dag.timetable).__name__ == "NullTimetable":
        return None
    return dag.timetable.expression, str(dag.timetable.timezone)


def test_each_workload_runs_on_its_own_schedule_and_the_rest_on_the_deployments(tmp_path, dags_of, monkeypatch):
    workloads = folder(tmp_path, "workloads")
    edit(workloads / "ticket_classification.yaml",
         lambda d: d.update(schedule="30 4 * * 1-5", timezone="Europe/Paris"))
    edit(workloads / "product_enrichment.yaml", lambda d: d.update(schedule="@weekly"))

    dags = dags_of(workloads)

    for path in ("batch", "stream", "backfill"):
        assert timetable(dags[f"nightshift_{path}_ticket_classification"]) == ("30 4 * * 1-5", "Europe/Paris"), path
        assert timetable(dags[f"nightshift_{path}_product_enrichment"]) == ("0 0 * * 0", "UTC"), path

    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__SCHEDULE", "15 1 * * *")
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__TIMEZONE", "America/New_York")
    edit(workloads / "product_enrichment.yaml", lambda d: d.pop("schedule"))
    dags = dags_of(workloads)
    assert timetable(dags["nightshift_batch_product_enrichment"]) == ("15 1 * * *", "America/New_York")
    assert timetable(dags["nightshift_batch_ticket_classification"]) == ("30 4 * * 1-5", "Europe/Paris")


def test_a_manual_only_workload_has_no_nightly_schedule_and_its_backfill_keeps_intervals(tmp_path, dags_of):
    workloads = folder(tmp_path, "workloads")
    edit(workloads / "ticket_classification.yaml", lambda d: d.update(schedule=None, timezone="Asia/Tokyo"))

    dags = dags_of(workloads)

    assert timetable(dags["nightshift_batch_ticket_classification"]) is None
    assert timetable(dags["nightshift_stream_ticket_classification"]) is None
    assert timetable(dags["nightshift_backfill_ticket_classification"]) == ("0 2 * * *", "Asia/Tokyo")
