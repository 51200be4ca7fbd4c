"""A workload's own schedule and time zone, checked when the definition loads (no Airflow here).

``deployment`` (the default of both) stands for the ``[nightshift] schedule`` / ``timezone`` setting,
which the Airflow layer fills in (:mod:`nightshift.dag_defaults`).
"""

from __future__ import annotations

import zoneinfo

#: A schedule or time zone left to the deployment's ``[nightshift]`` setting.
FROM_DEPLOYMENT = "deployment"

#: The presets Airflow's cron timetables accept, as Airflow 3 defines them (``airflow.utils.dates.
#: cron_presets`` and the Task SDK's ``CRON_PRESETS``); ``@once`` and ``@continuous`` have no nightly
#: data interval and are not offered.
CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def check_schedule(schedule: str) -> str:
    """A five-field cron expression or one of :data:`CRON_PRESETS`; anything else names the presets."""
    from croniter import croniter

    expression = CRON_PRESETS.get(schedule, schedule)
    if schedule.startswith("@") and schedule not in CRON_PRESETS:
        raise ValueError(f"unknown preset {schedule!r}; known: {', '.join(CRON_PRESETS)} (or a five-field "
                         "cron expression, or null for manual runs only)")
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"{schedule!r} is not a five-field cron expression (minute hour day-of-month month "
                         f"day-of-week, e.g. '0 2 * * *') nor a preset ({', '.join(CRON_PRESETS)})")
    return schedule


def check_timezone(name: str) -> str:
    """An IANA time zone name (``Europe/Paris``, ``UTC``)."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'UTC' or 'Europe/Paris')") \
            from None
    return name
