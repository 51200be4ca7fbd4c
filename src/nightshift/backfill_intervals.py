"""The data intervals a backfill of a workload covers, as Airflow computes them.

One convention for every date Nightshift and Airflow take: a date names the interval that
*starts* at it (a run's logical date). ``--from A --to B`` covers the intervals whose start lies
in [A, B], both ends included, that have already ended: the runs ``airflow backfill create
--from-date A --to-date B`` makes. Read from the backfill DAG's own timetable, serialised as the
scheduler holds it, never re-derived.
"""

from __future__ import annotations

from datetime import datetime

from nightshift.workloads.definition import Workload


def parse_date(text: str) -> datetime:
    """A date or timestamp as ``airflow backfill create`` reads it (no offset: the default time zone)."""
    from airflow.sdk.timezone import parse

    return parse(text)


def backfill_intervals(workload: Workload, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The (start, end) data intervals of the backfill runs for logical dates ``start`` to ``end``."""
    from airflow.sdk.timezone import utcnow
    from airflow.serialization.serialized_objects import DagSerialization

    from nightshift.batch_dags import backfill_dag

    dag = DagSerialization.from_dict(DagSerialization.to_dict(backfill_dag(workload)))
    now = utcnow()
    # as airflow.models.backfill._get_info_list: only intervals that have ended
    return [(info.data_interval.start, info.data_interval.end)
            for info in dag.iter_dagrun_infos_between(start, end)
            if info.data_interval and info.data_interval.end < now]
