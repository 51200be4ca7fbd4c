"""Deployment settings: one ``[nightshift]`` section of Airflow's configuration.

Read as Airflow reads its own options: ``AIRFLOW__NIGHTSHIFT__<KEY>`` from the environment,
then ``airflow.cfg`` (and secrets/commands), then the default below. The older
``NIGHTSHIFT_<KEY>`` variables are still honoured for a release, with a deprecation warning,
when the new name is not in the environment. The same table feeds the provider info's
``config`` section, so ``airflow config list`` documents every option.

Cheap enough for DAG-parse time: no DB, no network.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

SECTION = "nightshift"


@dataclass(frozen=True)
class Option:
    key: str
    default: str
    description: str
    type: str = "string"
    #: the environment variables that named this option before the [nightshift] section
    legacy: tuple[str, ...] = ()


OPTIONS: tuple[Option, ...] = (
    Option("db_conn_id", "nightshift_db",
           "Airflow connection id of the application database (destination tables, queue and ledger); "
           "a postgresql:// URL also works.", legacy=("NIGHTSHIFT_DB_CONN_ID", "NIGHTSHIFT_DB_URL")),
    Option("anthropic_conn_id", "anthropic_default",
           "Airflow connection id (type anthropic) the batch backend calls with.",
           legacy=("NIGHTSHIFT_ANTHROPIC_CONN_ID",)),
    Option("workloads_folder", "",
           "Folder(s) holding the workload definitions (*.yaml), separated by commas. Default: a "
           "'workloads' folder beside the DAGs folder. A folder named here that does not exist or holds "
           "no workload is an error.", legacy=("NIGHTSHIFT_WORKLOADS_DIR",)),
    Option("schedule", "0 2 * * *", "Cron schedule of the nightly batch DAGs.", legacy=("NIGHTSHIFT_SCHEDULE",)),
    Option("timezone", "UTC", "Time zone of the schedule and of the dashboard's days.",
           legacy=("NIGHTSHIFT_TIMEZONE",)),
    Option("batch_api_rpm", "45",
           "Calls to the batch endpoints per window, for all runs together (the account tier's limit, "
           "with headroom).", "integer", legacy=("NIGHTSHIFT_BATCH_API_RPM",)),
    Option("batch_api_window_seconds", "60", "The window batch_api_rpm counts over.", "float",
           legacy=("NIGHTSHIFT_BATCH_API_WINDOW_SECONDS",)),
    Option("poll_budget_rpm", "30", "The share of batch_api_rpm waiting runs aim to spend polling.", "float",
           legacy=("NIGHTSHIFT_POLL_BUDGET_RPM",)),
    Option("max_queued_requests", "90000", "Requests allowed in the account's batch processing queue.",
           "integer", legacy=("NIGHTSHIFT_MAX_QUEUED_REQUESTS",)),
    Option("backfill_max_active_runs", "4", "Backfill intervals that may run at once, per workload.",
           "integer", legacy=("NIGHTSHIFT_BACKFILL_MAX_ACTIVE_RUNS",)),
    Option("notifier", "nightshift.notifications.LogNotifier",
           "The BaseNotifier subclass (module.Class) a night that needs attention calls.",
           legacy=("NIGHTSHIFT_NOTIFIER",)),
    Option("dashboard_url", "", "Base URL of the dashboard, when it is not served by this Airflow's API server.",
           legacy=("NIGHTSHIFT_DASHBOARD_URL",)),
    Option("console_batch_url", "https://console.anthropic.com/workspaces/default/batches/{batch_id}",
           "A batch's page in the vendor console; {batch_id} is replaced.", legacy=("NIGHTSHIFT_CONSOLE_BATCH_URL",)),
)
_BY_KEY = {option.key: option for option in OPTIONS}


class SettingsError(ValueError):
    """A [nightshift] option whose value cannot be used, naming the option and the value."""


@dataclass(frozen=True)
class Settings:
    db_conn_id: str
    anthropic_conn_id: str
    workloads_folders: tuple[Path, ...]
    #: whether workloads_folders came from configuration (then a missing or empty one is an error)
    workloads_configured: bool
    schedule: str
    timezone: str
    batch_api_rpm: int
    batch_api_window_seconds: float
    poll_budget_rpm: float
    max_queued_requests: int
    backfill_max_active_runs: int
    notifier: str
    dashboard_url: str
    console_batch_url: str


def option(key: str) -> str:
    """One option's value: the new name, then a deprecated NIGHTSHIFT_* variable, then the default."""
    spec = _BY_KEY[key]
    new_env = f"AIRFLOW__{SECTION.upper()}__{key.upper()}"
    if new_env not in os.environ:
        for legacy in spec.legacy:
            if legacy in os.environ:
                warnings.warn(f"{legacy} is deprecated and will be ignored in a future release: set "
                              f"[{SECTION}] {key} in airflow.cfg or {new_env} instead",
                              DeprecationWarning, stacklevel=3)
                return os.environ[legacy]
    return _airflow_conf().get(SECTION, key, fallback=spec.default)


def settings() -> Settings:
    folders, configured = _workloads_folders(option("workloads_folder"))
    return Settings(
        db_conn_id=option("db_conn_id"),
        anthropic_conn_id=option("anthropic_conn_id"),
        workloads_folders=folders,
        workloads_configured=configured,
        schedule=option("schedule"),
        timezone=option("timezone"),
        batch_api_rpm=_number(int, "batch_api_rpm"),
        batch_api_window_seconds=_number(float, "batch_api_window_seconds"),
        poll_budget_rpm=_number(float, "poll_budget_rpm"),
        max_queued_requests=_number(int, "max_queued_requests"),
        backfill_max_active_runs=_number(int, "backfill_max_active_runs"),
        notifier=option("notifier"),
        dashboard_url=option("dashboard_url"),
        console_batch_url=option("console_batch_url"),
    )


def provider_config() -> dict:
    """The ``config`` section of the provider info (what ``airflow config list`` shows)."""
    return {SECTION: {"description": "Nightshift: Claude work nobody waits on, through the Message Batches API.",
                      "options": {o.key: {"description": o.description, "version_added": "0.2.0", "type": o.type,
                                          "example": None, "default": o.default or None} for o in OPTIONS}}}


def _number(kind: type, key: str) -> int | float:
    raw = option(key)
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"[{SECTION}] {key} = {raw!r} is not a{'n integer' if kind is int else ' number'}") from None


def _workloads_folders(raw: str) -> tuple[tuple[Path, ...], bool]:
    folders = tuple(Path(part.strip()).expanduser() for part in raw.split(",") if part.strip())
    if folders:
        return folders, True
    dags_folder = _airflow_conf().get("core", "dags_folder", fallback="") or "."
    return (Path(dags_folder).expanduser().resolve().parent / "workloads",), False


def _airflow_conf():
    try:
        from airflow.configuration import conf
    except ImportError:  # a bare worker with only the Task SDK
        from airflow.sdk.configuration import conf
    return conf
