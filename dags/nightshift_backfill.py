"""Airflow DAGs: backfill in interval mode, one per workload, for `airflow backfill create`."""

from nightshift.batch_dags import backfill_dag
from nightshift.deployment import all_workloads

for _workload in all_workloads().values():
    _dag = backfill_dag(_workload, fileloc=__file__)
    globals()[_dag.dag_id] = _dag
