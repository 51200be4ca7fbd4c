"""The deployment's workloads: those in the folders ``[nightshift] workloads_folder`` names.

The settings are Airflow's configuration, so this lookup belongs to the Airflow layer; the
loading itself (:mod:`nightshift.workloads.registry`) is given the folders.
"""

from __future__ import annotations

from pathlib import Path

from nightshift.workloads import registry
from nightshift.workloads.definition import Workload, WorkloadDefinitionError


def workloads_folders() -> tuple[Path, ...]:
    """The folders the settings name (default: ``workloads/`` beside the DAGs folder), each checked:
    one that does not exist or holds no ``*.yaml`` is an error naming it and the setting."""
    from nightshift.config import settings

    cfg = settings()
    where = ("[nightshift] workloads_folder" if cfg.workloads_configured
             else "the default (a 'workloads' folder beside the DAGs folder; set [nightshift] workloads_folder)")
    return registry.check_folders(cfg.workloads_folders, where)


def load_workloads(directory: Path | tuple[Path, ...] | None = None, *,
                   errors: dict[str, WorkloadDefinitionError] | None = None) -> dict[str, Workload]:
    """:func:`nightshift.workloads.registry.load_workloads`, by default of the configured folders."""
    return registry.load_workloads(workloads_folders() if directory is None else directory, errors=errors)


def _deployment() -> tuple[dict[str, Workload], dict[str, WorkloadDefinitionError]]:
    return registry.load_deployment(workloads_folders())


def get_workload(name: str) -> Workload:
    return registry.find_workload(_deployment(), name)


def all_workloads() -> dict[str, Workload]:
    """Every workload whose definition loads."""
    return _deployment()[0]


def definition_errors() -> dict[str, WorkloadDefinitionError]:
    """The workloads whose definition does not load, by name, with the error saying why."""
    return _deployment()[1]
