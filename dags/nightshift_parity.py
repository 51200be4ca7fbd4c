"""Airflow DAG: the daily parity report of every workload (shadow batch output vs streaming)."""

from datetime import datetime

from airflow.sdk import dag, task

from nightshift.deployment import all_workloads


@dag(schedule="0 8 * * *", start_date=datetime(2026, 1, 1), catchup=False, tags=["nightshift", "migration"],
     doc_md=__doc__)
def nightshift_parity_report():
    @task
    def parity(workload_name: str) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift import db
        from nightshift.config import settings
        from nightshift.migration import parity as parity_
        from nightshift.deployment import get_workload

        with db.connect(settings().db_conn_id) as conn:
            report = parity_.compare(conn, get_workload(workload_name))
            if report.rows_compared == 0:
                raise AirflowSkipException(f"{workload_name}: no shadow rows to compare")
            parity_.record(conn, report)
        return {"workload": workload_name, "agreement": report.agreement, "rows": report.rows_compared}

    for name in all_workloads():
        parity.override(task_id=f"parity_{name}")(name)


nightshift_parity_report_dag = nightshift_parity_report()
